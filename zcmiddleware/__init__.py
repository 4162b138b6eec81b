"""zcmiddleware: file responses of ASGI and WSGI apps on the server's zero-copy path."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
