"""The CRD's CEL rules for location fields, generated from the shared location rules.

The patterns, messages and checks themselves live once in ``musepose_runner.contract.location_rules``
(the runner's contract side, which the operator may import); this module only renders them
as CEL for the CRD and re-exports what the models use.
"""

from __future__ import annotations

from typing import Any

from musepose_runner.contract.location_rules import (
    COMMON_RULES,
    HTTPS_FORM_MESSAGE,
    HTTPS_FORM_PATTERN,
    INPUT_RULES,
)
from musepose_runner.contract.location_rules import MAX_LOCATION_LENGTH as MAX_LOCATION_LENGTH
from musepose_runner.contract.location_rules import input_location_problem as input_location_problem
from musepose_runner.contract.location_rules import (
    output_location_problem as output_location_problem,
)


def _forbid(pattern: str, message: str) -> dict[str, str]:
    return {"rule": f"!self.matches('{_cel_escape(pattern)}')", "message": message}


def input_location_cel_rules() -> Any:
    """CEL rules for an input location field (the form itself is an OpenAPI pattern)."""
    https_form = {
        "rule": f"!self.startsWith('https://') || self.matches('{_cel_escape(HTTPS_FORM_PATTERN)}')",
        "message": HTTPS_FORM_MESSAGE,
    }
    return [https_form, *(_forbid(p, m) for p, m in INPUT_RULES)]


def output_location_cel_rules() -> Any:
    return [_forbid(p, m) for p, m in COMMON_RULES]


def _cel_escape(pattern: str) -> str:
    """A regular expression as a single-quoted CEL string literal body."""
    return pattern.replace("\\", "\\\\").replace("'", "\\'")
