"""What every example serves, and the command line they share (standard library only).

* ``/download`` -- a large generated file (64 MiB of reproducible bytes);
* ``/video.webm`` -- a 10 s test video, made with ffmpeg when it is installed;
* ``/`` -- a page with both, so a person can seek in the video by hand.

The files live in ``$ZCMIDDLEWARE_EXAMPLE_DIR``, or ``zcmiddleware-example`` under
the temporary directory. Tests point that variable at a directory of their own.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile

LARGE_SIZE = 64 * 1024 * 1024
VIDEO_SECONDS = 10


def directory() -> str:
    path = os.environ.get("ZCMIDDLEWARE_EXAMPLE_DIR") or os.path.join(
        tempfile.gettempdir(), "zcmiddleware-example"
    )
    os.makedirs(path, exist_ok=True)
    return path


def large_file(size: int = LARGE_SIZE) -> str:
    """``download.bin``: ``size`` reproducible bytes, rewritten on each start (atomically,
    so a concurrent run never sees half a file)."""
    path = os.path.join(directory(), "download.bin")
    with tempfile.NamedTemporaryFile(dir=directory(), delete=False) as f:
        f.write(random.Random(0).randbytes(size))
    os.replace(f.name, path)
    return path


def make_video(path: str, seconds: int = VIDEO_SECONDS) -> None:
    """A VP9/WebM test pattern (Debian's chromium decodes VP9), written atomically."""
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), suffix=".webm") as f:
        partial = f.name  # a name of its own: two first runs may race
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=640x360:rate=25"]
        + ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"]
        + ["-g", "25", "-pix_fmt", "yuv420p", partial],
        check=True,
        timeout=300,
    )
    os.replace(partial, path)


def video_file() -> str | None:
    """``video.webm``, made once with ffmpeg; None when there is none and no ffmpeg."""
    path = os.path.join(directory(), "video.webm")
    if not os.path.exists(path) and shutil.which("ffmpeg"):
        make_video(path)
    return path if os.path.exists(path) else None


def page(video: str | None) -> str:
    """The HTML page at ``/``."""
    if video:
        player = '<video src="/video.webm" controls preload="metadata" width="640"></video>'
    else:
        player = "<p>No video: install ffmpeg and restart to get one.</p>"
    return (
        "<!doctype html><meta charset=utf-8><title>zcmiddleware example</title>"
        f"<h1>zcmiddleware example</h1>{player}"
        '<p><a href="/download">download.bin</a> (64 MiB; try '
        "<code>curl -C - -O</code>, <code>wget -c</code> or a download manager)</p>"
    )


def options(description: str) -> argparse.Namespace:
    """``--demo`` and ``--port``, the same for every example."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--demo", action="store_true", help="download three ways, check, exit")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (8000)")
    return parser.parse_args()
