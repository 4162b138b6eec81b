"""zcmiddleware: file responses of ASGI and WSGI apps on the server's zero-copy path."""

from ._asgi import ZeroCopyMiddleware
from ._options import (
    ABORTS_SHORT_FILES,
    OPENS_BEFORE_START,
    PATHSEND,
    PATHSEND_RANGE,
    ZEROCOPYSEND,
    Delivery,
)
from ._wsgi import ZeroCopyWSGIMiddleware

__version__ = "0.1.0.dev0"

__all__ = [
    "ABORTS_SHORT_FILES",
    "OPENS_BEFORE_START",
    "PATHSEND_RANGE",
    "PATHSEND",
    "ZEROCOPYSEND",
    "Delivery",
    "ZeroCopyMiddleware",
    "ZeroCopyWSGIMiddleware",
    "__version__",
]
