"""Serving the app so that even requests aiohttp refuses before any route sees them (a
request line or header over 8190 bytes, bytes that are not HTTP) get problem+json, not
aiohttp's text/plain page, which echoes the first 100 bytes of the offending line.

aiohttp answers those from its connection handler (``RequestHandler.handle_error``),
below the app and its middleware, and offers no hook for it: the runner here makes its
server build handlers whose ``handle_error`` answers in the gateway's shape. A unit test
sends such requests over a socket, so an aiohttp upgrade that bypasses this fails there.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler

from musepose_operator.gateway.problems import MEDIA_TYPE, GatewayProblem

log = logging.getLogger(__name__)

# aiohttp's limit for the request line and each header line (its default max_line_size and
# max_field_size), i.e. a URL of about 8 KiB.
MAX_LINE_BYTES = 8190


def refusal(status: int, exc: BaseException | None) -> GatewayProblem:
    """The problem for a request refused before routing; never quotes the request."""
    if status != HTTPStatus.BAD_REQUEST:
        return GatewayProblem(500, "internal-error", "Internal error",
                              "the gateway failed; see its log")
    if isinstance(exc, LineTooLong):
        detail = (f"the request line (method and URL) or a header is longer than "
                  f"{MAX_LINE_BYTES} bytes")
        return GatewayProblem(400, "request-too-long", "Request too long", detail)
    return GatewayProblem(400, "invalid-http", "Invalid HTTP request",
                          "the request is not valid HTTP/1.1")


class _ProblemHandler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        # One line, no traceback and no message: aiohttp's messages quote the request.
        if not isinstance(exc, BadHttpMethod):
            log.info("refused a request from %s before routing: %s %s", request.remote,
                     status, type(exc).__name__ if exc else "")
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already; cannot send the error")
        problem = refusal(status, exc)
        body = problem.details().model_dump_json(exclude_none=True)
        response = web.Response(status=problem.status, text=body, content_type=MEDIA_TYPE)
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemHandler(self, loop=self._loop, **self._kwargs)


class ProblemRunner(web.AppRunner):
    """An AppRunner whose connections answer refused requests with problem+json."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProblemServer  # same object and state; only __call__ differs
        return server


def run(app: web.Application, host: str, port: int, shutdown_timeout: float = 10) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (what ``web.run_app`` does, with ProblemRunner)."""
    runner = ProblemRunner(app, handle_signals=True, shutdown_timeout=shutdown_timeout)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("serving on http://%s:%s", host, port)
        await asyncio.Event().wait()

    try:
        loop.run_until_complete(start())
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
