"""gunicorn's settings for people who run gunicorn themselves, from this directory::

    gunicorn -c gunicorn.conf.py 'server:create_app()'            # 127.0.0.1:8000, like server.py
    gunicorn -c gunicorn.conf.py -b 127.0.0.1:9000 'vtwait.server:create_app()'

The same server as ``python server.py``: the gevent worker with JSON errors and a graceful stop,
the limits and timeouts, the fd-limit check, the workers check, one log line per request. Server
settings come from the environment and ``.env`` (``python server.py --help`` lists them); gunicorn's
own flags (``-b``, ``-w``) override what is set here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn reads this before --chdir

from vtwait.server.cli import configure_logging  # noqa: E402
from vtwait.server.serving import gunicorn_settings  # noqa: E402
from vtwait.server.settings import Settings  # noqa: E402

_settings = Settings.from_env()
configure_logging(_settings.log_file)
globals().update(gunicorn_settings(_settings, prog="server.py"))
