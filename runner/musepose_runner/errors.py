"""Errors that end a run, each carrying the exit code and status reason it maps to."""

from __future__ import annotations

from musepose_runner.contract import ExitCode


class RunnerError(Exception):
    """Base: a failure the runner understands and reports in its result."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR
    default_reason = "InternalError"

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field


class BadInput(RunnerError):
    """An input is missing, undecodable, too large or otherwise unusable. Never retried."""

    exit_code = ExitCode.BAD_INPUT
    default_reason = "InvalidInput"


class BadConfig(RunnerError):
    """Weights or settings are missing or wrong. Never retried: an admin must fix them."""

    exit_code = ExitCode.BAD_CONFIG
    default_reason = "InvalidConfiguration"


class WeightsError(BadConfig):
    default_reason = "WeightsInvalid"


class Transient(RunnerError):
    """Storage or network trouble that may pass. Retried by the Job."""

    exit_code = ExitCode.TRANSIENT
    default_reason = "TransientError"


class OutOfMemory(RunnerError):
    """The GPU ran out of memory. The operator retries once in lower-VRAM mode when the
    Animation allows it (memoryFallback), else the run fails naming the reason."""

    exit_code = ExitCode.OUT_OF_MEMORY
    default_reason = "OutOfMemory"
