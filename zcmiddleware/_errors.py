"""The errors the adapters and the server integrations share, one name per idea::

OSError
 ├── NotARegularFileError   a directory, FIFO, device or socket: never served
 ├── FileShrankError        the file ended before the announced bytes: abort
 ├── FileChangedError       not the size a pathsend's range was planned for
 └── PermissionError
      └── SendfileRootError a sendfile_header path outside sendfile_roots
Exception
 └── ClientGone             the client went away: end the response quietly
"""

from __future__ import annotations

__all__ = [
    "ClientGone",
    "FileChangedError",
    "FileShrankError",
    "NotARegularFileError",
    "SendfileRootError",
]


class NotARegularFileError(OSError):
    """The path names a directory, FIFO, device or socket: never served, never waited on."""


class FileShrankError(OSError):
    """The file ended before the announced bytes were sent: it shrank while being sent.

    The response must be aborted, never completed short (its Content-Length would lie).
    """


class FileChangedError(OSError):
    """A pathsend's file is not the size its range (``PATHSEND_RANGE``) was planned for:
    it changed since the app looked at it. Never sent."""


class SendfileRootError(PermissionError):
    """A ``sendfile_header`` path lies outside every configured root."""


class ClientGone(Exception):
    """The client went away (the server's send failed, or the socket closed)."""
