"""uvicorn-worker's gunicorn worker, with zcmiddleware's uvicorn protocol classes.

``gunicorn app:app -k zcmiddleware.uvicorn.UvicornWorker``: each worker runs
uvicorn exactly as ``uvicorn_worker.UvicornWorker`` does, with ``http=`` set to
``AutoHTTPProtocol``. Needs the ``uvicorn-worker`` package, imported only when
this worker is asked for.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as _UvicornWorker  # type: ignore[import-untyped]


class UvicornWorker(_UvicornWorker):  # type: ignore[misc]
    """``uvicorn_worker.UvicornWorker`` serving HTTP with ``AutoHTTPProtocol``."""

    CONFIG_KWARGS: dict[str, Any] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "http": "zcmiddleware.uvicorn:AutoHTTPProtocol",
    }
