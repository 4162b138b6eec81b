"""The clients people use, against the examples as their docstrings run them.

curl (whole, and killed then resumed with ``-C -``), ``wget -c``, ``aria2c -x 8 -s 8``
and headless Chromium seeking in a video, against ``examples/starlette_app.py`` on
uvicorn with ``zcmiddleware.uvicorn`` and ``examples/flask_app.py`` on gunicorn.
Every download is compared byte for byte with the file; the zero-copy path is read
off the server: the middleware's DEBUG log lines (``examples/logging.json``) name the
delivery of every file response, and in the server process the bytes that went by
``sendfile`` are counted against those read in Python (``os.pread``) and, on gunicorn,
written through Python (``tests/apps/example_asgi_counting.py``,
``tests/apps/wsgi_gunicorn_conf.py``).

A test whose tool is not installed is skipped, except under ``CI=true``: CI installs
every tool, so there a missing one fails the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _servers import HOST, ROOT_DIR, TESTS_DIR, Server, free_port, python, run_server
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.integration

EXAMPLES = ROOT_DIR / "examples"
LOG_CONFIG = EXAMPLES / "logging.json"
CLIENT_TIMEOUT = 180  # seconds; two shared cores
# DEBUG lines of zcmiddleware.asgi ("... 206 partial, 100 body bytes via zerocopysend")
# and zcmiddleware.wsgi ("... -> 206 via file_wrapper").
DELIVERY = re.compile(
    r"zcmiddleware\.(?:asgi|wsgi): (?P<method>\S+) (?P<path>\S+) -> (?P<status>\d+)"
    r"(?: \w+, (?P<bytes>\d+) body bytes)? via (?P<via>\S+)$",
    re.MULTILINE,
)


def need(tool: str) -> str:
    """The tool's path; skip without it, but fail under CI, which installs it."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, but .ci/run installs it")
        pytest.skip(message)
    return path


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.returncode}\n{result.stdout}{result.stderr}"
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the example servers ----------------------------------------------------------


@dataclass
class Delivery:
    path: str
    status: int
    via: str
    body_bytes: int | None  # the ASGI log says how many bytes were planned


@dataclass
class Example:
    """An example app on a real server, with what the server says it did."""

    kind: str  # "asgi" or "wsgi"
    server: Server
    directory: Path
    mark_at: int = 0
    stats_calls: int = 0

    @property
    def zero_copy(self) -> set[str]:
        # zcmiddleware.uvicorn: whole files by path (it opens them before the start),
        # ranges by zerocopysend; both are its sendfile(2).
        return {"zerocopysend", "pathsend"} if self.kind == "asgi" else {"file_wrapper"}

    @property
    def download(self) -> Path:
        return self.directory / "download.bin"

    def url(self, path: str = "/download") -> str:
        return self.server.url + path

    def mark(self) -> None:
        """Start counting anew: later calls see only what happens after this one."""
        self.settled_stats()  # a killed client's last sendfile may still be counting
        self.stats(reset=True)
        self.stats_calls = 0
        self.mark_at = len(self.server.log())

    def deliveries(self, path: str = "/download") -> list[Delivery]:
        found = [
            Delivery(m["path"], int(m["status"]), m["via"], m["bytes"] and int(m["bytes"]))
            for m in DELIVERY.finditer(self.server.log()[self.mark_at :])
        ]
        return [d for d in found if d.path == path]

    def stats(self, reset: bool = False) -> dict[str, int]:
        """The server's bytes by sendfile and by the fallback's pread (gunicorn: and by
        sendall)."""
        self.stats_calls += 1
        url = self.url("/__zc_stats?reset" if reset else "/__zc_stats")
        with urllib.request.urlopen(url, timeout=30) as response:
            stats: dict[str, int] = json.load(response)
        return stats

    def settled_stats(self) -> dict[str, int]:
        """The worker counts after each sendfile returns, which may be just after the
        client has its last byte (or was killed): read until the count holds still."""
        deadline = time.monotonic() + 30
        stats = self.stats()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            stats, before = self.stats(), stats
            if stats["sendfile"] == before["sendfile"]:
                break
        return stats

    def assert_zero_copy(self, body_bytes: int, requests: int, exact: bool = True) -> None:
        """Every file response since mark() went zero-copy and carried ``body_bytes``
        (at least that many when a client hung up early)."""
        deliveries = self.deliveries()
        assert len(deliveries) >= requests, self.server.log()[self.mark_at :]
        assert {d.via for d in deliveries} <= self.zero_copy, deliveries
        stats = self.settled_stats()
        total = stats["sendfile"]
        assert stats["pread"] == 0, stats  # no fallback reads
        if self.kind == "asgi":
            # What the middleware planned is what the server sent by sendfile.
            planned = sum(d.body_bytes or 0 for d in deliveries)
            assert planned == total if exact else planned >= total, (planned, stats)
        else:
            # Through Python went headers only: under 4 KiB per file response, plus
            # the answers to our own /__zc_stats requests.
            assert stats["sendall"] < 4096 * len(deliveries) + 1024 * self.stats_calls, stats
        assert total == body_bytes if exact else total >= body_bytes, (total, body_bytes)


def _load_content_module() -> Any:
    spec = importlib.util.spec_from_file_location("_content", EXAMPLES / "_content.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples' files; with ffmpeg, the test's own video, made before they start."""
    directory = tmp_path_factory.mktemp("example")
    if shutil.which("ffmpeg"):
        _load_content_module().make_video(str(directory / "video.webm"))
    return directory


def _argv(kind: str, port: int) -> list[str]:
    if kind == "asgi":  # as examples/starlette_app.py says, plus the counting wrapper
        return python(
            "-m", "uvicorn", "--app-dir", str(TESTS_DIR / "apps"), "example_asgi_counting:app",
            "--http", "zcmiddleware.uvicorn:AutoHTTPProtocol",
            "--host", HOST, "--port", str(port), "--log-config", str(LOG_CONFIG),
        )  # fmt: skip
    return python(  # as examples/flask_app.py says, plus the counting config
        "-m", "gunicorn", "--chdir", str(EXAMPLES), "-k", "gthread", "--threads", "8",
        "-b", f"{HOST}:{port}", "-c", str(TESTS_DIR / "apps" / "wsgi_gunicorn_conf.py"),
        "--log-config-json", "logging.json", "flask_app:app",
    )  # fmt: skip


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def example(request: pytest.FixtureRequest, example_dir: Path) -> Iterator[Example]:
    kind: str = request.param
    directory = example_dir / kind
    directory.mkdir()
    if (example_dir / "video.webm").exists():
        shutil.copy(example_dir / "video.webm", directory / "video.webm")
    port = free_port()
    env = {"ZCMIDDLEWARE_EXAMPLE_DIR": str(directory)}
    with run_server(_argv(kind, port), port=port, env=env, cwd=ROOT_DIR, ready_timeout=60) as s:
        yield Example(kind, s, directory)


@pytest.fixture()
def ex(example: Example) -> Example:
    example.mark()
    return example


# --- command-line clients ---------------------------------------------------------


def test_curl_downloads_the_whole_file(ex: Example, tmp_path: Path) -> None:
    curl = need("curl")
    out = tmp_path / "download.bin"
    result = run([curl, "-sS", "--fail", "-D", "-", "-o", str(out), ex.url()])
    assert result.stdout.startswith("HTTP/1.1 200"), result.stdout
    assert sha256(out) == sha256(ex.download)
    ex.assert_zero_copy(ex.download.stat().st_size, requests=1)


def _interrupted(argv: list[str], out: Path, at_least: int) -> int:
    """Run a rate-limited download until ``out`` holds ``at_least`` bytes, then kill it
    (by its PID): a transfer cut off mid-body. Returns the bytes it left."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.stat().st_size >= at_least:
                break
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait(30)
    return out.stat().st_size


def test_curl_resumes_a_killed_download(ex: Example, tmp_path: Path) -> None:
    curl = need("curl")
    out = tmp_path / "download.bin"
    size = ex.download.stat().st_size
    partial = _interrupted(
        [curl, "-sS", "--limit-rate", "4M", "-o", str(out), ex.url()], out, 2 * 2**20
    )
    assert 0 < partial < size
    ex.mark()
    result = run([curl, "-sS", "--fail", "-C", "-", "-D", "-", "-o", str(out), ex.url()])
    assert result.stdout.startswith("HTTP/1.1 206"), result.stdout
    assert f"bytes {partial}-{size - 1}/{size}" in result.stdout
    assert sha256(out) == sha256(ex.download)
    ex.assert_zero_copy(size - partial, requests=1)


def test_wget_continues_a_partial_download(ex: Example, tmp_path: Path) -> None:
    wget = need("wget")
    out = tmp_path / "download.bin"
    size = ex.download.stat().st_size
    partial = _interrupted(
        [wget, "-q", "--limit-rate=4m", "-O", str(out), ex.url()], out, 2 * 2**20
    )
    assert 0 < partial < size
    ex.mark()
    result = run([wget, "-c", "-S", "-O", str(out), ex.url()])
    assert "HTTP/1.1 206" in result.stderr, result.stderr
    assert sha256(out) == sha256(ex.download)
    ex.assert_zero_copy(size - partial, requests=1)


def test_aria2c_downloads_on_eight_connections(ex: Example, tmp_path: Path) -> None:
    aria2c = need("aria2c")
    size = ex.download.stat().st_size
    run(
        [aria2c, "-x", "8", "-s", "8", "-k", "1M", "--file-allocation=none"]
        + ["--console-log-level=warn", "--summary-interval=0", "--allow-overwrite=true"]
        + ["-d", str(tmp_path), "-o", "download.bin", ex.url()]
    )
    assert sha256(tmp_path / "download.bin") == sha256(ex.download)
    ranged = [d for d in ex.deliveries() if d.status == 206]
    assert len(ranged) >= 2, ex.deliveries()  # it really split the file
    # Each connection may be cut off once its piece is in: at least the file went.
    ex.assert_zero_copy(size, requests=len(ranged), exact=False)


# --- a browser ----------------------------------------------------------------------

# Plays the page's <video>, seeks near its end and reports whether it kept playing.
SEEK_AND_PLAY = """
(async () => {
  const video = document.querySelector("video");
  const until = async (test, what) => {
    for (let i = 0; i < 600 && !test(); i++) await new Promise(r => setTimeout(r, 100));
    if (!test()) throw new Error("timed out waiting for " + what);
  };
  video.muted = true;
  await until(() => video.readyState >= 1 || video.error, "metadata");
  if (video.error) throw new Error("video error " + video.error.code);
  await video.play();
  await until(() => video.currentTime > 0.5, "playback");
  const target = video.duration - 2;
  video.currentTime = target;
  await until(() => !video.seeking && video.currentTime >= target, "the seek");
  const afterSeek = video.currentTime;
  await until(() => video.currentTime > afterSeek + 0.5 || video.ended, "playing on");
  return {duration: video.duration, target, afterSeek, now: video.currentTime,
          ended: video.ended, error: video.error && video.error.code};
})()
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
]


class DevTools:
    """The least of a Chrome DevTools Protocol client: one page, commands in turn,
    the events that arrive in between kept in ``events``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, deadline: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(
            self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        )
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while not any(e["method"] == event for e in self.events):
            self._receive(deadline)

    def responses(self, url: str) -> list[dict[str, Any]]:
        """What the page received for ``url``: status and headers, lower-cased names."""
        return [
            {
                "status": e["params"]["response"]["status"],
                **{k.lower(): v for k, v in e["params"]["response"]["headers"].items()},
            }
            for e in self.events
            if e["method"] == "Network.responseReceived" and e["params"]["response"]["url"] == url
        ]


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile, in its own process group, killed on exit."""
    profile = tmp_path / "profile"
    argv = [need("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
    log = open(tmp_path / "chromium.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "chromium.log"
            ).read_text(errors="replace")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://{HOST}:{port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=60) as ws:
            yield DevTools(ws)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        log.close()


def test_chromium_seeks_in_a_video_and_keeps_playing(ex: Example, tmp_path: Path) -> None:
    need("ffmpeg")  # the video is the test's own, made with ffmpeg
    video = ex.directory / "video.webm"
    size = video.stat().st_size
    with chromium(tmp_path) as browser:
        browser.call("Network.enable")
        browser.call("Network.setCacheDisabled", cacheDisabled=True)  # every range on the wire
        # A slow line (256 KiB/s, the video's ~1 Mbit/s twice over): when the player
        # seeks near the end, that part is not buffered yet and needs a new range.
        browser.call(
            "Network.emulateNetworkConditions",
            offline=False,
            latency=0,
            downloadThroughput=256 * 1024,
            uploadThroughput=-1,
        )
        browser.call("Page.enable")
        browser.call("Page.navigate", url=ex.url("/"))
        browser.wait_for("Page.loadEventFired")
        result = browser.call(
            "Runtime.evaluate", expression=SEEK_AND_PLAY, awaitPromise=True, returnByValue=True
        )
        responses = browser.responses(ex.url("/video.webm"))
    assert "exceptionDetails" not in result, result
    state = result["result"]["value"]
    assert state["error"] is None, state
    assert abs(state["duration"] - 10) < 0.5, state
    assert state["afterSeek"] >= state["target"], state
    assert state["now"] > state["afterSeek"] + 0.5, state  # it played on after the seek
    # The seek near the end was a new request for a range in the last half of the
    # file, answered 206 by the zero-copy path.
    starts = [
        int(r["content-range"].split()[1].split("-")[0])
        for r in responses
        if r["status"] == 206 and r.get("x-zerocopy-path") in ex.zero_copy
    ]
    assert any(size // 2 < start < size - 64 * 1024 for start in starts), (starts, size)
    # And on the server's side, every video body went by that path.
    with_body = [d for d in ex.deliveries("/video.webm") if d.via != "none"]
    assert {d.via for d in with_body} <= ex.zero_copy, ex.deliveries("/video.webm")
