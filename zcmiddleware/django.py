"""Django: the project's application, with its file responses on the zero-copy path.

```python
# asgi.py
from zcmiddleware.django import get_asgi_application

application = get_asgi_application()

# wsgi.py
from zcmiddleware.django import get_wsgi_application

application = get_wsgi_application()
```

Django's ``ASGIHandler`` sends a ``FileResponse`` by iterating it, and that iterator
is synchronous: ``StreamingHttpResponse.__aiter__`` reads the whole file into a list
before the first byte goes out. The handler here sends a ``FileResponse`` over a
regular file as ``http.response.start`` + ``http.response.pathsend`` instead; the
``ZeroCopyMiddleware`` around it answers Range, conditional and HEAD requests and
delivers the body by the server's best path. Everything else goes out exactly as
Django sends it. See docs/django.md.

Importing this module imports Django; ``import zcmiddleware`` does not.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any

import django  # type: ignore[import-untyped]
from asgiref.sync import sync_to_async
from django.core.files.base import File  # type: ignore[import-untyped]
from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]
from django.core.wsgi import (  # type: ignore[import-untyped]
    get_wsgi_application as _django_wsgi_application,
)
from django.http import FileResponse  # type: ignore[import-untyped]

from ._asgi import ZeroCopyMiddleware
from ._options import PATHSEND
from ._wsgi import ZeroCopyWSGIMiddleware

__all__ = ["ZeroCopyASGIHandler", "get_asgi_application", "get_wsgi_application"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Set per request from the scope: only a server (or middleware) that offers pathsend
# is sent one. Django's handler hands send_response no scope, hence a context variable.
_offers_pathsend: ContextVar[bool] = ContextVar("zcmiddleware_django_pathsend", default=False)

# The file objects whose read() returns the file's own bytes from its descriptor: a
# FileResponse over anything else (a GzipFile has a fileno() and a name too, but reads
# other bytes) is left to Django.
_RAW_FILE_TYPES = (io.BufferedReader, io.BufferedRandom, io.FileIO)


def get_asgi_application(**middleware_options: Any) -> ZeroCopyMiddleware:
    """Django's ``get_asgi_application()``, its file responses going zero-copy.

    Keyword arguments are ``ZeroCopyMiddleware``'s options (docs/asgi.md).
    """
    django.setup(set_prefix=False)
    return ZeroCopyMiddleware(ZeroCopyASGIHandler(), **middleware_options)


def get_wsgi_application(**middleware_options: Any) -> ZeroCopyWSGIMiddleware:
    """Django's ``get_wsgi_application()`` inside ``ZeroCopyWSGIMiddleware``.

    Keyword arguments are ``ZeroCopyWSGIMiddleware``'s options (docs/wsgi.md).
    """
    return ZeroCopyWSGIMiddleware(_django_wsgi_application(), **middleware_options)


class _StartCaptured(Exception):
    """Raised by the capturing ``send`` once Django's handler built the start message."""

    def __init__(self, message: Message) -> None:
        super().__init__()
        self.message = message


class ZeroCopyASGIHandler(ASGIHandler):  # type: ignore[misc]
    """Django's ``ASGIHandler``, sending a ``FileResponse`` over a regular file by path.

    Only the sending changes: Django still closes the response (and with it the file)
    and fires ``request_finished`` after ``send_response`` returns, as it always does.
    """

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]], send: Send
    ) -> None:
        token = _offers_pathsend.set(PATHSEND in (scope.get("extensions") or {}))
        try:
            await super().__call__(scope, receive, send)
        finally:
            _offers_pathsend.reset(token)

    async def send_response(self, response: Any, send: Send) -> None:
        path = None
        if _offers_pathsend.get() and isinstance(response, FileResponse):
            # A middleware that replaced the streaming content (GZipMiddleware) set
            # file_to_stream to None: such a body is Django's to send.
            filelike = response.file_to_stream
            if filelike is not None:
                loop = asyncio.get_running_loop()
                path = await loop.run_in_executor(None, regular_file_path, filelike)
        if path is None:
            await super().send_response(response, send)
            return
        try:
            await send(await self._start_message(response))
            await send({"type": PATHSEND, "path": path})
        except Exception:
            # The middleware could not serve the path (the file vanished since the
            # check): the server answers 500. Django closes no response whose sending
            # raised, so close it here: the file and request_finished, once each.
            await sync_to_async(response.close)()
            raise

    async def _start_message(self, response: Any) -> Message:
        # Django's own send_response builds the start message (headers as it encodes
        # them, cookies as Set-Cookie) and sends it before touching the body: capture
        # it there and stop, so the headers are Django's in every Django version.
        async def capture(message: Message) -> None:
            raise _StartCaptured(message)

        try:
            await super().send_response(response, capture)
        except _StartCaptured as captured:
            return captured.message
        raise RuntimeError("Django's send_response sent no http.response.start")


def regular_file_path(filelike: Any) -> str | None:
    """The absolute path of the regular file ``filelike`` reads, positioned at its
    start; ``None`` when Django must send it itself.

    Blocking (``fstat``, ``stat``): call it in a worker thread. A candidate path counts
    only if it names the very file open on the descriptor (same device and inode).
    """
    raw = _raw_file(filelike)
    if raw is None:
        return None
    try:
        fd = raw.fileno()
        st = os.fstat(fd)
        # Django sends from the current position; pathsend sends the whole file.
        if not stat.S_ISREG(st.st_mode) or filelike.tell() != 0:
            return None
    except (OSError, ValueError):  # closed, or no descriptor (io.UnsupportedOperation)
        return None
    for candidate in _candidate_paths(filelike, fd):
        try:
            found = os.stat(candidate)
        except (OSError, ValueError):
            continue
        if (found.st_dev, found.st_ino) == (st.st_dev, st.st_ino):
            return candidate
    return None


def _raw_file(filelike: Any) -> io.IOBase | None:
    """The binary file object under ``filelike`` (a Django ``File``/``FieldFile`` wraps
    one, maybe through another ``File``), or ``None`` for anything else."""
    for _ in range(4):
        if isinstance(filelike, _RAW_FILE_TYPES):
            return filelike
        if not isinstance(filelike, File):
            return None
        filelike = filelike.file
    return None


def _candidate_paths(filelike: Any, fd: int) -> Iterator[str]:
    # The names along the wrapping chain (a FieldFile's own name is relative to its
    # storage, the file it wraps has the full one), then what Linux says is open.
    for _ in range(4):
        name = getattr(filelike, "name", None)
        if isinstance(name, (str, bytes)) and name:
            yield os.path.abspath(os.fsdecode(name))
        if not isinstance(filelike, File):
            break
        filelike = filelike.file
    try:
        yield os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
