"""The Animation models: every default, bound and cross-field rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musepose_operator.api import AnimationSpec, AnimationStatus, ConditionType, Phase
from tests.api_cases import CASES, DEFAULTS, SpecCase


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_spec_rules(case: SpecCase) -> None:
    if case.valid:
        AnimationSpec.model_validate(case.spec)
        return
    with pytest.raises(ValidationError) as raised:
        AnimationSpec.model_validate(case.spec)
    assert case.field in str(raised.value)


def test_defaults_fill_every_omitted_field() -> None:
    spec = AnimationSpec.model_validate({"referenceImage": "/data/ref.png"})
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key, value in DEFAULTS.items():
        assert dumped[key] == value, key
    assert "output" not in dumped  # resolved by the operator from its bucket setting


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="referenceImg"):
        AnimationSpec.model_validate({"referenceImage": "/a.png", "referenceImg": "/b.png"})


def test_error_names_the_field_and_says_what_to_write() -> None:
    with pytest.raises(ValidationError) as raised:
        AnimationSpec.model_validate({"referenceImage": "ref.png"})
    text = str(raised.value)
    assert "referenceImage" in text
    assert "s3://bucket/key, https://host/path or an absolute path" in text


def test_status_condition_lookup_and_phases() -> None:
    status = AnimationStatus.model_validate({
        "phase": "Running",
        "conditions": [{"type": "Finished", "status": "False", "reason": "Running",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    })
    finished = status.condition(ConditionType.FINISHED)
    assert finished is not None and not finished.is_true
    assert status.condition("Ready") is None
    assert Phase.SUCCEEDED.terminal and Phase.FAILED.terminal and not Phase.RUNNING.terminal
