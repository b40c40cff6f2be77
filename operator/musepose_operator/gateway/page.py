"""The web page at ``/``: static files shipped in the package (static/), no CDN, served with a
strict Content-Security-Policy: scripts and styles from the gateway only (none inline), no
framing, no plugins; uploads and the finished video may also reach the object store's
origin. The page keeps the caller's token in sessionStorage and sends it as an
Authorization header, never a cookie, so another site cannot ride on it (no CSRF)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")
_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}


def content_security_policy(store_origin: str | None) -> str:
    """The page's CSP; ``store_origin`` (scheme://host:port) is where uploads go and videos
    come from."""
    store = f" {store_origin}" if store_origin else ""
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        f"img-src 'self' blob:{store}", f"media-src 'self' blob:{store}",
        f"connect-src 'self'{store}", "object-src 'none'", "base-uri 'none'",
        "form-action 'self'", "frame-ancestors 'none'",
    ])


def _headers(policy: str, media_type: str) -> dict[str, str]:
    return {"Content-Security-Policy": policy, "Content-Type": f"{media_type}; charset=utf-8",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"}


def routes(store_origin: str | None) -> list[web.RouteDef]:
    policy = content_security_policy(store_origin)
    # Read once: the files ship with the package and never change while it runs.
    bodies = {name: (STATIC / name).read_bytes() for name in _FILES}

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=bodies["index.html"],
                            headers=_headers(policy, _FILES["index.html"]))

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _FILES or name == "index.html":
            raise web.HTTPNotFound()
        return web.Response(body=bodies[name], headers=_headers(policy, _FILES[name]))

    return [web.get("/", index), web.get("/static/{name}", static)]
