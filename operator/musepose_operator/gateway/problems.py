"""Every gateway error in one documented shape: RFC 9457 problem details (problem+json).

``type`` is a stable URN per kind of problem; ``errors`` names the payload field(s) at fault
with the original endpoint's field names. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from musepose_operator.admission.payload import PayloadProblem

MEDIA_TYPE = "application/problem+json"
_URN = "urn:musepose:gateway:problem:"


class FieldError(BaseModel):
    field: str = Field(description="The payload field (original snake_case name), or "
                       "'payload', 'namespace', 'id', 'Authorization' for the request itself.")
    message: str = Field(description="What is wrong with it, in a sentence.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with the fields at fault under ``errors``."""

    type: str = Field(description="A URN naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[FieldError] = Field(default_factory=list,
                                     description="One entry per field at fault.")


class GatewayProblem(Exception):
    """Raised anywhere in a request; the app turns it into a problem+json response."""

    def __init__(self, status: int, kind: str, title: str, detail: str,
                 errors: Iterable[PayloadProblem] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}

    def details(self, instance: str | None = None) -> ProblemDetails:
        return ProblemDetails(
            type=_URN + self.kind, title=self.title, status=self.status, detail=self.detail,
            instance=instance,
            errors=[FieldError(field=e.field, message=e.message) for e in self.errors])


def invalid_payload(problems: list[PayloadProblem]) -> GatewayProblem:
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return GatewayProblem(400, "invalid-payload", "Invalid payload",
                          f"the payload is invalid: {fields}", problems)


def bad_request(field: str, message: str) -> GatewayProblem:
    return GatewayProblem(400, "invalid-request", "Invalid request", f"{field}: {message}",
                          [PayloadProblem(field, message)])


def unauthenticated(message: str) -> GatewayProblem:
    return GatewayProblem(401, "unauthenticated", "Unauthenticated", message,
                          [PayloadProblem("Authorization", message)],
                          {"WWW-Authenticate": 'Bearer realm="musepose-gateway"'})


def forbidden(message: str) -> GatewayProblem:
    return GatewayProblem(403, "forbidden", "Forbidden", message)


def not_found(original_id: str, namespace: str) -> GatewayProblem:
    message = f"no request {original_id!r} in namespace {namespace!r}"
    return GatewayProblem(404, "not-found", "Not found", message,
                          [PayloadProblem("id", message)])


def id_conflict(original_id: str) -> GatewayProblem:
    # The same words whoever made the existing request and whatever it held: a 409 must
    # not reveal whether a guessed payload matched someone else's.
    message = (f"{original_id!r} is already used by another request in this namespace; "
               "send a new id")
    return GatewayProblem(409, "id-conflict", "Id already used", message,
                          [PayloadProblem("id", message)])


def unsupported_media_type(got: str) -> GatewayProblem:
    message = f"send the payload as application/json, not {got or 'no content type'}"
    return GatewayProblem(415, "unsupported-media-type", "Unsupported media type", message,
                          [PayloadProblem("Content-Type", message)])


def too_large(limit: int) -> GatewayProblem:
    message = f"the payload is larger than {limit} bytes"
    return GatewayProblem(413, "payload-too-large", "Payload too large", message,
                          [PayloadProblem("payload", message)])


def upstream(message: str) -> GatewayProblem:
    return GatewayProblem(503, "kubernetes-unavailable", "Kubernetes API unavailable", message)


def too_many_streams(limit: int) -> GatewayProblem:
    message = (f"this caller already has {limit} event streams open (the most at once); "
               "close one, or poll GET /animate/{id}")
    return GatewayProblem(429, "too-many-streams", "Too many event streams", message,
                          headers={"Retry-After": "5"})
