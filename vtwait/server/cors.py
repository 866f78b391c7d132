"""CORS, so that a browser app can call the simulator: off unless ``CORS_ORIGINS`` is set.

``CORS_ORIGINS`` is ``*`` or a comma-separated list of origins (``https://app.example:8080``).
For an allowed ``Origin``:

* a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 before
  authentication, the rate limit and fault rules (a browser sends no credentials with it), with
  the API's methods and request headers and a ``Max-Age``;
* every other answer gets ``Access-Control-Allow-Origin`` (the origin itself, and ``Vary:
  Origin``) and ``Access-Control-Expose-Headers``: the hint, rate-limit and paging headers a
  script needs to read (by default a browser only shows it the CORS-safelisted ones).

A preflight from an origin not allowed is answered 204 without CORS headers, so the browser
refuses the call; the server itself never refuses a request for its ``Origin`` (CORS protects the
user's browser, not the server). No ``Access-Control-Allow-Credentials``: clients send
``Authorization`` themselves, which needs no cookies. Hand-written rather than flask-cors: see
docs/testing-your-client.md for the comparison::

    install(app, settings.cors_origin_set)    # before the app's auth hook
"""

from __future__ import annotations

from flask import Flask, Response, request

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "EXPOSED_HEADERS", "MAX_AGE", "install"]

#: Methods the API answers.
ALLOWED_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
#: Request headers a script may send beyond the safelisted ones.
ALLOWED_HEADERS = ("Authorization, Content-Type, Prefer, Idempotency-Key, Last-Event-ID, "
                   "Cancel-After, X-Api-Key, If-Range, Range")
#: Answer headers a script may read: hints, rate limits, paging, output downloads, replays.
EXPOSED_HEADERS = ("Retry-After, Location, Operation-Location, Link, Preference-Applied, "
                   "Idempotent-Replayed, RateLimit, RateLimit-Policy, ETag, Content-Range, "
                   "Accept-Ranges, Content-Length, Content-Disposition, WWW-Authenticate")
#: Seconds a browser may cache a preflight's answer.
MAX_AGE = 600


def install(app: Flask, origins: frozenset[str] | None) -> None:
    """Answers preflights and adds CORS headers for ``origins`` (``{"*"}``: any); None: off."""
    if origins is None:
        return
    any_origin = "*" in origins

    def allowed(origin: str | None) -> bool:
        return origin is not None and (any_origin or origin.rstrip("/") in origins)

    # First of all the hooks: a preflight carries no credentials and must not be rate-limited.
    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        origin = request.headers.get("Origin")
        if allowed(origin):
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = str(MAX_AGE)
        return response

    @app.after_request
    def _allow_origin(response: Response) -> Response:
        origin = request.headers.get("Origin")
        response.vary.add("Origin")  # the answer differs by Origin: caches must key on it
        if allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin or "*"
            if request.method != "OPTIONS":
                response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
