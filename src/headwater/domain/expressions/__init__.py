"""Headwater's expression language: a documented subset of Okta Expression Language.

Compile once when the expression is saved, evaluate many times::

    rule = compile_expression(
        'user.department == "Engineering" && !isMemberOfGroupName("Contractors")',
        context=Context.group_rule(),
        expect=Type.BOOLEAN,
    )
    rule.test(Facts(user={"department": "Engineering"}, group_names={"Staff"}))  # True

``compile_expression`` and ``compile_template`` raise ``ExpressionError`` (an Okta 400, with
position and problem); ``Compiled.evaluate`` raises only ``EvaluationError``. Pure: no I/O.
See docs/expressions.md for the language.
"""

from headwater.domain.expressions.compiler import (
    Compiled,
    GroupReference,
    compile_expression,
    compile_node,
    compile_template,
)
from headwater.domain.expressions.errors import EvaluationError, ExpressionError, Position
from headwater.domain.expressions.functions import FUNCTIONS, RULE_FUNCTIONS, TEMPLATE_FUNCTIONS
from headwater.domain.expressions.model import Context, Facts, Limits, Type, Value
from headwater.domain.expressions.parser import parse_expression
from headwater.domain.expressions.syntax import Node, to_source

__all__ = [
    "FUNCTIONS",
    "RULE_FUNCTIONS",
    "TEMPLATE_FUNCTIONS",
    "Compiled",
    "Context",
    "EvaluationError",
    "ExpressionError",
    "Facts",
    "GroupReference",
    "Limits",
    "Node",
    "Position",
    "Type",
    "Value",
    "compile_expression",
    "compile_node",
    "compile_template",
    "parse_expression",
    "to_source",
]
