"""The two errors of the expression language.

``ExpressionError``: the text is refused when it is saved (syntax, unknown names, types,
limits); it is an ``InvalidRequest`` (Okta's 400) whose message names the position.
``EvaluationError``: one evaluation failed for one user's facts (a value of the wrong type at
run time, a sandbox bound); the caller records it for that user and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.errors import InvalidRequest

__all__ = ["EvaluationError", "ExpressionError", "Position"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a problem is: 1-based line and column of the text as written."""

    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        if self.line == 1:
            return f"column {self.column}"
        return f"line {self.line}, column {self.column}"


def _message(problem: str, position: Position | None, hint: str | None) -> str:
    text = problem if position is None else f"{problem} at {position}"
    return f"{text}; {hint}" if hint else text


class ExpressionError(InvalidRequest):
    """Refused expression: ``str(error)`` reads like ``unknown function String.toLower at column
    8; did you mean String.toLowerCase?``. ``for_field`` makes Okta's 400 for a request field."""

    def __init__(self, position: Position | None, problem: str, hint: str | None = None) -> None:
        self.position = position
        self.problem = problem
        self.hint = hint
        self.message = _message(problem, position, hint)
        super().__init__(self.message, [self.message])

    def for_field(self, name: str) -> InvalidRequest:
        """Okta's ``Api validation failed: name`` with the message as the field's cause."""
        return InvalidRequest(f"Api validation failed: {name}", [f"{name}: {self.message}"])


class EvaluationError(Exception):
    """One evaluation failed; ``str(error)`` says what and where."""

    def __init__(self, problem: str, position: Position | None = None) -> None:
        self.problem = problem
        self.position = position
        self.message = _message(problem, position, None)
        super().__init__(self.message)
