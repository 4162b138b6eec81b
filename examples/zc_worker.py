"""A gunicorn worker class: uvicorn's, with zcmiddleware's protocol classes.

    gunicorn --chdir examples -k zc_worker.ZeroCopyUvicornWorker -w 2 \\
        -b 127.0.0.1:8000 --log-config-json logging.json starlette_app:app

Copy it into your project; it needs ``pip install uvicorn-worker``.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class ZeroCopyUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": "zcmiddleware.uvicorn:AutoHTTPProtocol",
    }
