"""The compatibility gateway: the original REST endpoint, served on top of Animations.

Old clients POST their payload as before; the gateway authenticates them (Kubernetes
TokenReview + SubjectAccessReview, or API keys), converts the payload (``convert.py``) and
creates the Animation, which is the only record: the gateway holds no state.

    app.py      routes and error middleware      auth.py    who calls, and may they
    body.py     bytes → payload, safely          keys.py    static API keys (pure)
    records.py  sealed requester/id records     views.py   answers (pydantic models)
    openapi.py  /openapi.json from the models    problems.py  RFC 9457 errors
    store.py    Kubernetes calls on Animations   server.py  the process
    serving.py  problem+json below the routes
"""

from musepose_operator.gateway.app import GatewayConfig, build_app

__all__ = ["GatewayConfig", "build_app"]
