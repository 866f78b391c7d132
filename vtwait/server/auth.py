"""API keys: with ``API_KEY`` set, a bearer token or an API-key header is accepted beside HTTP Basic.

HTTP Basic (``API_USERNAME`` / ``API_PASSWORD``) is checked by ``app.credentials_ok``; this module
adds the key, which is accepted as ``Authorization: Bearer <key>`` or in ``X-Api-Key`` (and in the
header of the active dialect's service, e.g. Azure's ``Ocp-Apim-Subscription-Key``)::

    api_key_ok(request.headers, settings, ("Ocp-Apim-Subscription-Key",))

Every candidate is compared with :func:`hmac.compare_digest`, all of them, so the time taken says
nothing about how much of a guess was right. The key is never logged, and no message quotes it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Protocol

from vtwait.server.settings import Settings

__all__ = ["API_KEY_HEADER", "api_key_ok", "auth_required", "challenges", "credentials_wanted"]

#: The API-key header accepted in every dialect (HeyGen's, and a common convention).
API_KEY_HEADER = "X-Api-Key"


class _Headers(Protocol):
    def get(self, key: str) -> str | None: ...


def auth_required(settings: Settings) -> bool:
    """Whether a request needs credentials: Basic is configured, or ``API_KEY`` is set."""
    return settings.auth_enabled or settings.api_key is not None


def api_key_ok(headers: _Headers, settings: Settings,
               extra_headers: Iterable[str] = ()) -> bool:
    """Whether the request carries ``API_KEY`` as a bearer token or in an API-key header.

    Args:
        headers: the request's headers (case-insensitive, as werkzeug's are).
        settings: the server's settings; no ``API_KEY`` means no key is accepted.
        extra_headers: more header names that may carry the key (the dialect's own).
    """
    key = settings.api_key
    if key is None:
        return False
    expected = key.encode()
    candidates = [headers.get(name) for name in (API_KEY_HEADER, *extra_headers)]
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        candidates.append(token.strip())
    ok = False
    for candidate in candidates:  # every one compared, none skipped: constant time per header
        if candidate is not None:
            ok |= hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), expected)
    return ok


def challenges(settings: Settings, realm: str) -> str:
    """The ``WWW-Authenticate`` value of a 401: one challenge per accepted scheme."""
    schemes = []
    if settings.auth_enabled:
        schemes.append(f'Basic realm="{realm}"')
    if settings.api_key is not None:
        schemes.append(f'Bearer realm="{realm}"')
    return ", ".join(schemes)


def credentials_wanted(settings: Settings) -> str:
    """The message of a 401: which credentials this server takes (never the key itself)."""
    if settings.api_key is None:
        return "valid HTTP Basic credentials required"
    basic = "HTTP Basic, " if settings.auth_enabled else ""
    return f"valid credentials required: {basic}Authorization: Bearer <API_KEY> or {API_KEY_HEADER}"
