"""Who may use the control API: loopback clients with ``Authorization: Bearer <ADMIN_TOKEN>``.

The token is the control API's own credential, never the API's; it is compared in constant time
and never logged. Clients that are not on a loopback address are refused (403) unless
``ADMIN_ALLOW_REMOTE`` is on, before their token is even looked at.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from vtwait.server.errors import ApiError

__all__ = ["REALM", "check_admin", "is_loopback"]

logger = logging.getLogger(__name__)

#: Realm named in the control API's ``WWW-Authenticate``.
REALM = "vtwait-admin"


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` is a loopback address (an IPv4-mapped one too)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def check_admin(token: str | None, allow_remote: bool, remote_addr: str | None,
                authorization: str | None) -> None:
    """Raises the answer a control-API request gets when it may not pass; returns if it may.

    Raises:
        ApiError: 404 when the control API is off (``token`` None), 403 for a remote client
            without ``ADMIN_ALLOW_REMOTE``, 401 without the right bearer token.
    """
    if token is None:
        raise ApiError(404, "not_found", "no such route (the control API is off: set ADMIN_TOKEN)")
    if not allow_remote and not is_loopback(remote_addr):
        logger.warning("control API refused to non-loopback client %s", remote_addr)
        raise ApiError(403, "forbidden", "the control API answers loopback clients only "
                                         "(ADMIN_ALLOW_REMOTE=1 lifts this)")
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        logger.warning("control API: missing or wrong bearer token from %s", remote_addr)
        raise ApiError(401, "unauthorized", "the control API needs Authorization: Bearer "
                                            "<ADMIN_TOKEN>",
                       headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
