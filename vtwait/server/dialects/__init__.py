"""The API shapes the simulator answers in: ``DIALECT`` = native | azure | google | replicate |
openai | heygen.

Each dialect is one module with one :class:`~vtwait.server.dialects.base.Dialect` and a Blueprint of
its service's routes; the app factory installs the chosen one (:func:`install_dialect`) beside the
native routes, which stay (health checks, metrics, the event stream and test tools use them). The
documents and the public pages each dialect follows are listed in ``docs/dialects-server.md``::

    install_dialect(app, settings)       # in create_app
    current_dialect().api_key_headers    # in a request
"""

from __future__ import annotations

from flask import Flask, current_app

from vtwait.server.dialects.azure import AzureDialect
from vtwait.server.dialects.base import Dialect
from vtwait.server.dialects.google import GoogleDialect
from vtwait.server.dialects.heygen import HeyGenDialect
from vtwait.server.dialects.openai import OpenAIDialect
from vtwait.server.dialects.replicate import ReplicateDialect
from vtwait.server.settings import DIALECTS, Settings

__all__ = ["DIALECT_CLASSES", "Dialect", "current_dialect", "install_dialect"]

#: Every dialect by its ``DIALECT`` name.
DIALECT_CLASSES: dict[str, type[Dialect]] = {
    "native": Dialect,
    "azure": AzureDialect,
    "google": GoogleDialect,
    "replicate": ReplicateDialect,
    "openai": OpenAIDialect,
    "heygen": HeyGenDialect,
}
assert tuple(DIALECT_CLASSES) == DIALECTS, "settings.DIALECTS and DIALECT_CLASSES must agree"

_EXTENSION_KEY = "vtwait.dialect"
_NATIVE = Dialect()


def install_dialect(app: Flask, settings: Settings) -> Dialect:
    """Installs the dialect ``settings.dialect`` names on ``app`` and returns it."""
    dialect = DIALECT_CLASSES[settings.dialect]()
    dialect.install(app)
    app.extensions[_EXTENSION_KEY] = dialect
    return dialect


def current_dialect() -> Dialect:
    """The dialect of the app handling the current request (native if none was installed)."""
    dialect = current_app.extensions.get(_EXTENSION_KEY)
    return dialect if isinstance(dialect, Dialect) else _NATIVE
