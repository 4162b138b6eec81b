"""Start real servers on 127.0.0.1 for integration tests, and stop them by PID.

The one subprocess runner of the project: every integration test module and the
benchmarks (``benchmarks/_harness.py``) pick a port, start a server in its own
process group and stop that group the same way.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
TESTS_DIR = Path(__file__).resolve().parent
ROOT_DIR = TESTS_DIR.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def open_fds(self, pid: int | None = None) -> int:
        """Open descriptors of the server (or of one of its worker processes)."""
        return len(os.listdir(f"/proc/{pid or self.pid}/fd"))

    def open_files(self, pid: int | None = None) -> list[str]:
        """What the server's descriptors that are not sockets point to (files, pipes):
        a leak check that a client's connection, closed a moment later on the
        server's side, cannot upset."""
        directory = f"/proc/{pid or self.pid}/fd"
        targets = []
        for fd in os.listdir(directory):
            with contextlib.suppress(OSError):  # closed while listed
                target = os.readlink(f"{directory}/{fd}")
                if not target.startswith("socket:"):
                    targets.append(target)
        return sorted(targets)

    def children(self) -> list[int]:
        """PIDs of the server's direct children (worker processes)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log()}")


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group, so that it and its
    workers can be stopped together and nothing else), output to ``log``."""
    return subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group we started (the server and its workers), then
    SIGKILL whatever is left; only PIDs we started are signalled."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    # Workers of a leader that is gone must not outlive it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def stop(server: Server, timeout: float = 10.0) -> None:
    """:func:`stop_process` for a server started by :func:`run_server`."""
    stop_process(server.process, timeout)


@contextlib.contextmanager
def run_server(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[Server]:
    """Run ``argv`` (which must listen on ``port`` at 127.0.0.1) in its own process
    group; yield once it accepts connections; stop it on exit."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT_DIR), str(TESTS_DIR), full_env.get("PYTHONPATH", "")]
    )
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        full_env.update(env)
    with tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        process = spawn(argv, env=full_env, cwd=cwd or TESTS_DIR, log=log)
    server = Server(process, port, log_path)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(server)
        log_path.unlink(missing_ok=True)


def run_example_demo(script: str) -> str:
    """Run ``python examples/<script> --demo`` as the README says; its stdout, or an
    AssertionError with everything it printed."""
    result = subprocess.run(
        [sys.executable, str(ROOT_DIR / "examples" / script), "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT_DIR)},
        cwd=ROOT_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 60.0
) -> tuple[http.client.HTTPResponse, bytes]:
    """One GET to 127.0.0.1:``port`` on a connection of its own: the response, its body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def fetch(
    server: Server, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own: status, headers (lower-case names) and
    the body exactly as it came over the wire (IncompleteRead if it is shorter than its
    Content-Length; no content decoding)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def python(*args: str) -> list[str]:
    """argv that runs this interpreter (the test venv's) with ``args``."""
    return [sys.executable, *args]
