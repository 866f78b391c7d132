"""The simulator: a Flask app with a job store, served by gunicorn + gevent."""

from vtwait.server.app import ApiError, ConfigError, Settings, create_app, main

__all__ = ["ApiError", "ConfigError", "Settings", "create_app", "main"]
