"""``expressions``: evaluations per second of a compiled group rule and a compiled mapping.

A typical rule, ``user.department == "Engineering" && !isMemberOfGroupName("Contractors")``, and
a typical mapping, ``String.substringBefore(user.email, "@")``, are compiled once and evaluated
over N users' facts (built beforehand, not timed). Baseline: the same logic written by hand in
Python over the same facts, so the ratio is what the sandboxed language costs. Compiling is timed
too (the cost of saving a rule). ``python -m bench.expressions [--quick]`` runs it alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Context, Databases, Mode, Report
from headwater.domain.expressions import Context as ExpressionContext
from headwater.domain.expressions import Facts, Type, compile_expression

__all__ = ["MAPPING", "RULE", "run"]

NAME = "expressions"
RULE = 'user.department == "Engineering" && !isMemberOfGroupName("Contractors")'
MAPPING = 'String.substringBefore(user.email, "@")'
DEPARTMENTS = ("Engineering", "Sales", "Finance", "Support")


def _facts(count: int) -> list[Facts]:
    return [
        Facts(
            user={
                "login": f"user{i:06d}@example.com",
                "email": f"user{i:06d}@example.com",
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "firstName": "Ada",
                "lastName": f"Number{i}",
            },
            group_names=frozenset({"Everyone", "Contractors"} if i % 7 == 0 else {"Everyone"}),
        )
        for i in range(count)
    ]


def _hand_rule(facts: Facts) -> bool:
    return facts.user.get("department") == "Engineering" and "Contractors" not in facts.group_names


def _hand_mapping(facts: Facts) -> Any:
    email = facts.user.get("email")
    return email.split("@", 1)[0] if isinstance(email, str) else None


def _rate(function: Callable[[Facts], Any], facts: list[Facts], rounds: int) -> float:
    """Evaluations per second: the best of ``rounds`` passes over all facts."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in facts:
            function(item)
        best = min(best, time.perf_counter() - started)
    return len(facts) / best


def run(ctx: Context) -> None:
    report = ctx.report
    count = 20_000 if ctx.mode.name == "quick" else 100_000
    rounds = 3
    report.section(f"expressions: evaluations per second over {count:,} users")
    started = time.perf_counter()
    compiles = 200
    for _ in range(compiles):
        rule = compile_expression(RULE, context=ExpressionContext.group_rule(), expect=Type.BOOLEAN)
    compile_ms = (time.perf_counter() - started) / compiles * 1000
    mapping = compile_expression(MAPPING, context=ExpressionContext.mapping())
    facts = _facts(count)
    matched = sum(rule.test(item) for item in facts)
    assert matched == sum(_hand_rule(item) for item in facts)
    assert all(mapping.evaluate(item) == _hand_mapping(item) for item in facts[:1000])

    report.row(NAME, "compile the rule", f"{compile_ms:8.3f} ms", compile_ms=compile_ms)
    figures = {}
    for label, function in (
        ("rule (compiled)", rule.test),
        ("rule (hand-written Python)", _hand_rule),
        ("mapping (compiled)", mapping.evaluate),
        ("mapping (hand-written Python)", _hand_mapping),
    ):
        rate = _rate(function, facts, rounds)
        figures[label] = rate
        report.row(
            NAME,
            label,
            f"{rate:12,.0f} evaluations/s  ({1e6 / rate:6.2f} µs each)",
            per_second=rate,
            users=count,
        )
    report.line(f"{matched:,} of {count:,} users match the rule")
    report.ratio(
        NAME,
        "rule: compiled time / hand-written Python time",
        figures["rule (hand-written Python)"] / figures["rule (compiled)"],
        "how much slower the sandboxed rule is than plain Python",
    )
    report.ratio(
        NAME,
        "mapping: compiled time / hand-written Python time",
        figures["mapping (hand-written Python)"] / figures["mapping (compiled)"],
        "how much slower the sandboxed mapping is than plain Python",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.expressions", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 users instead of 100,000")
    args = parser.parse_args(argv)
    mode = Mode.pick(quick=args.quick, full=False)
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as scratch:
        databases = Databases(Path(scratch))
        try:
            run(Context(mode, Report(), databases, Path(scratch)))
        finally:
            databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
