"""Names of the API: group, kind, condition types and phases."""

from __future__ import annotations

import enum

GROUP = "musepose.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Animation"
PLURAL = "animations"
SINGULAR = "animation"
SHORT_NAME = "anim"
CATEGORY = "musepose"

# Annotation the compatibility converter uses to keep the original payload id verbatim.
ORIGINAL_ID_ANNOTATION = f"{GROUP}/original-id"


class ConditionType(enum.StrEnum):
    """Condition types on an Animation. Adjectives / past tense, as the API conventions ask."""

    ACCEPTED = "Accepted"  # the spec passed every check the operator can make without inputs
    QUEUED = "Queued"  # waiting for a concurrency slot (or for Kueue to admit the Job)
    RUNNING = "Running"  # a runner pod is working on it
    SUCCEEDED = "Succeeded"  # the video is written (Unknown while the run is active)
    FAILED = "Failed"  # the run failed and will not be retried
    FINISHED = "Finished"  # terminal either way: `kubectl wait --for=condition=Finished`
    READY = "Ready"  # kstatus / Flux: True once the video exists
    RECONCILING = "Reconciling"  # kstatus "abnormal-true": work in progress
    STALLED = "Stalled"  # kstatus "abnormal-true": failed for good, stop waiting


class Phase(enum.StrEnum):
    """A one-word summary for humans; conditions are the API."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)
