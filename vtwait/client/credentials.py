"""Which credentials a client sends: HTTP Basic, a bearer token or an API-key header.

    creds = resolve_credentials(api_key="k")          # header X-Api-Key: k
    creds.headers_for("http://host/status/1")          # {'X-Api-Key': 'k'} on base_url's origin

One scheme per client, from the arguments, else from the environment: ``API_USERNAME`` and
``API_PASSWORD`` (Basic), else ``API_BEARER_TOKEN`` (``Authorization: Bearer``), else ``API_KEY``
(sent in ``API_KEY_HEADER``, default ``X-Api-Key``). The bearer token and the API key go only to
``base_url``'s origin (scheme, host and port), never to a status monitor elsewhere, and neither
the secrets nor the headers appear in a ``repr`` or a log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_API_KEY_HEADER", "Credentials", "resolve_credentials"]

#: The header an API key is sent in unless ``api_key_header`` says otherwise.
DEFAULT_API_KEY_HEADER = "X-Api-Key"

# RFC 9110 field names are tokens.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class Credentials:
    """The resolved credentials: ``auth`` for Basic (or the caller's own ``auth``), else
    ``headers`` (a bearer token or an API key) for requests to ``origin``."""

    auth: Any = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    scheme: str = "none"  #: ``none``, ``auth`` (the caller's), ``basic``, ``bearer``, ``api_key``
    origin: str = ""  #: scheme://host:port the headers may go to ("" before :meth:`for_origin`)

    def for_origin(self, base_url: str) -> Credentials:
        return Credentials(self.auth, self.headers, self.scheme, _origin(base_url))

    def headers_for(self, url: str) -> dict[str, str]:
        """The credential headers for a request to ``url`` (none off ``base_url``'s origin)."""
        if not self.headers or _origin(url) != self.origin:
            return {}
        return dict(self.headers)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def resolve_credentials(username: str | None = None, password: str | None = None, *,
                        auth: Any = None, bearer_token: str | None = None,
                        api_key: str | None = None, api_key_header: str | None = None,
                        environ: Mapping[str, str] | None = None) -> Credentials:
    """The one credential scheme of a client, from its arguments, else from the environment.

    Args:
        username, password: HTTP Basic (a missing half comes from ``API_USERNAME`` /
            ``API_PASSWORD``).
        auth: The caller's own ``auth`` object or pair (sent as it is).
        bearer_token: Sent as ``Authorization: Bearer <token>``.
        api_key: Sent in the header ``api_key_header``.
        api_key_header: The API key's header name (default ``API_KEY_HEADER``, else
            ``X-Api-Key``).
        environ: The environment (default ``os.environ``).

    Raises:
        ValueError: more than one scheme given, or a token, key or header name that cannot go
            in a header.
    """
    env = os.environ if environ is None else environ
    given = [name for name, value in (("auth", auth), ("username/password", username or password),
                                      ("bearer_token", bearer_token), ("api_key", api_key))
             if value]
    if len(given) > 1:
        raise ValueError(f"pass one credential scheme, got {' and '.join(given)}")
    header = api_key_header if api_key_header is not None else env.get("API_KEY_HEADER")
    header = header or DEFAULT_API_KEY_HEADER
    if not _TOKEN.match(header):
        raise ValueError(f"api_key_header must be an HTTP header name, got {header!r}")
    if auth is not None:
        return Credentials(auth=auth, scheme="auth")
    if not given:  # the environment, in the same order of preference
        if env.get("API_USERNAME") and env.get("API_PASSWORD") is not None:
            username, password = env["API_USERNAME"], env["API_PASSWORD"]
        elif env.get("API_BEARER_TOKEN"):
            bearer_token = env["API_BEARER_TOKEN"]
        elif env.get("API_KEY"):
            api_key = env["API_KEY"]
    if bearer_token:
        token = _header_value(bearer_token, "bearer_token")
        return Credentials(headers={"Authorization": f"Bearer {token}"}, scheme="bearer")
    if api_key:
        return Credentials(headers={header: _header_value(api_key, "api_key")}, scheme="api_key")
    username = username if username is not None else env.get("API_USERNAME")
    password = password if password is not None else env.get("API_PASSWORD")
    if username and password is not None:
        return Credentials(auth=(username, password), scheme="basic")
    return Credentials()


def _header_value(secret: str, name: str) -> str:
    if not isinstance(secret, str) or not secret.strip() or any(c in secret for c in "\r\n\0"):
        raise ValueError(f"{name} must be a non-empty string without line breaks")
    return secret.strip()
