"""The browser demo: a static chat page at ``/demo`` (HTML + JS + CSS, no build step).

The page talks to the public API with the token the user types: it POSTs to the webhook, polls
``/api/v1/message/response`` and renders the reply's WhatsApp formatting (``*bold*``, ``_italic_``,
``~strike~``, ```` `code` ````). Served by the poll function (and so by the local stack).
"""

from __future__ import annotations

from importlib import resources

import flask

from shared.http import error_response

ASSETS = {
    "demo.html": "text/html; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _serve(name: str) -> flask.Response:
    body = resources.files("shared").joinpath("static", name).read_bytes()
    response = flask.Response(body, status=200, content_type=ASSETS[name])
    response.headers["Content-Security-Policy"] = _CSP
    return response


def page(_request: flask.Request) -> flask.Response:
    return _serve("demo.html")


def asset(request: flask.Request) -> flask.Response:
    name = request.path.rsplit("/", 1)[-1]
    if name not in ASSETS or name == "demo.html":
        return error_response(404, "Not Found", "The requested endpoint does not exist", path=request.path)
    return _serve(name)
