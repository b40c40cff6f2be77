"""Errors that end a run, each carrying the exit code and status reason it maps to."""

from __future__ import annotations

from musepose_runner.contract.job_spec import ExitCode


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


class NonFinite(RunnerError):
    """The model produced NaN or infinity (fp16 overflow in the VAE or the reference bank
    are the known sources): refused before it is saved or encoded as a black video."""

    exit_code = ExitCode.NON_FINITE
    default_reason = "NonFinite"


class PeerFailed(RunnerError):
    """Another worker of the gang failed with its own code (e.g. 71, out of memory): this
    worker ends with the same code, so the whole gang is judged (and falls back) together."""

    def __init__(self, message: str, *, exit_code: int, reason: str,
                 field: str | None = None) -> None:
        super().__init__(message, reason=reason, field=field)
        try:
            self.exit_code = ExitCode(exit_code)
        except ValueError:  # not one of ours: the peer crashed
            self.exit_code = ExitCode.INTERNAL_ERROR
