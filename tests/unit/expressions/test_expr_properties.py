"""Properties over random trees: printing then parsing gives the same tree and the same value,
and evaluation raises nothing but the library's own errors."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.domain.expressions import (
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    Limits,
    compile_expression,
    compile_node,
    parse_expression,
    to_source,
)
from headwater.domain.expressions.functions import FUNCTIONS
from headwater.domain.expressions.syntax import (
    Arithmetic,
    ArrayLiteral,
    Call,
    Compare,
    Conditional,
    Literal,
    Logical,
    Negate,
    Node,
    Not,
    Reference,
)

MAPPING = Context.mapping()
NAMES = ["a", "b", "n", "flag", "tags", "missing"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).filter(lambda x: "e" not in repr(x)),
    TEXT,
)
PLAIN = sorted(name for name, function in FUNCTIONS.items() if function.kind == "plain")
MEMBERSHIP = ["isMemberOfGroup", "isMemberOfGroupName", "isMemberOfGroupNameStartsWith"]

LEAVES = st.one_of(
    st.builds(Literal, SCALARS),
    st.builds(Reference, st.sampled_from(["user", "appuser"]), st.sampled_from(NAMES)),
    st.builds(lambda name, value: Call(name, (Literal(value),)), st.sampled_from(MEMBERSHIP), TEXT),
)


def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    small = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Not, children),
        st.builds(Negate, children),
        st.builds(
            Arithmetic,
            children,
            st.lists(st.tuples(st.sampled_from(["+", "-"]), children), min_size=1, max_size=3).map(
                tuple
            ),
        ),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", ">", "<=", ">="]), children, children),
        st.builds(
            Logical,
            st.sampled_from(["&&", "||"]),
            st.lists(children, min_size=2, max_size=3).map(tuple),
        ),
        st.builds(Conditional, children, children, children),
        st.builds(ArrayLiteral, small),
        st.builds(Call, st.sampled_from(PLAIN), small),
    )


TREES = st.recursive(LEAVES, extend, max_leaves=12)
PROFILES = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(SCALARS, st.lists(st.one_of(TEXT, st.integers(0, 9)), max_size=3))
        for name in NAMES
    },
)
FACTS = st.builds(
    Facts,
    user=PROFILES,
    appuser=PROFILES,
    group_names=st.frozensets(TEXT, max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(TREES)
def test_printing_then_parsing_gives_the_same_tree(tree: Node) -> None:
    text = to_source(tree)
    parsed, _ = parse_expression(text, Limits(max_depth=64))
    assert parsed == tree, text
    assert to_source(parsed) == text


@settings(max_examples=400, deadline=None)
@given(TREES, FACTS)
def test_evaluation_raises_only_the_library_errors(tree: Node, facts: Facts) -> None:
    try:
        compiled = compile_node(tree, context=MAPPING)
    except ExpressionError:
        return
    try:
        value = compiled.evaluate(facts)
    except EvaluationError:
        return
    again = compile_expression(to_source(tree), context=MAPPING).evaluate(facts)
    assert again == value or (value != value and again != again)  # NaN-free in practice


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="user.ab()+-!=<>&|?:,{}\"' 0123456789SringtoLwC", max_size=40))
def test_random_text_raises_only_the_library_errors(text: str) -> None:
    try:
        compiled = compile_expression(text, context=MAPPING)
    except ExpressionError:
        return
    with contextlib.suppress(EvaluationError):
        compiled.evaluate(Facts(user={"a": "x", "b": 2}))
