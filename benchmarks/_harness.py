"""The moving parts: files, servers, CPU accounting from /proc, checks, wrk.

Everything here talks to 127.0.0.1 only and stops only the process groups it
started, by PID.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._configs import FILES, HOST, Config, MiB, Scenario
from tests._servers import free_port, spawn, stop_process

BENCH_DIR = Path(__file__).resolve().parent
ROOT_DIR = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


# -- files -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchFile:
    name: str
    path: Path
    size: int
    sha256: str


def prepare_files(cache_dir: Path, log: Any = print) -> dict[str, BenchFile]:
    """Create the benchmark files in ``cache_dir`` (once; deterministic bytes)
    and read each of them once so the page cache holds them."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.chmod(0o755)  # nginx workers may run as nobody
    manifest_path = cache_dir / "manifest.json"
    try:
        manifest: dict[str, dict[str, Any]] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    files: dict[str, BenchFile] = {}
    for name, size in FILES.items():
        path = cache_dir / name
        entry = manifest.get(name, {})
        st = path.stat() if path.exists() else None
        fresh = (
            st is not None
            and st.st_size == size
            and entry.get("size") == size
            and entry.get("mtime_ns") == st.st_mtime_ns
        )
        if not fresh:
            log(f"generating {path} ({size} bytes)")
            rng = random.Random(f"zcmiddleware-bench-{name}")
            with path.open("wb") as f:
                left = size
                while left:
                    n = min(left, 8 * MiB)
                    f.write(rng.randbytes(n))
                    left -= n
            path.chmod(0o644)
        # Read the whole file once: hashes it and leaves it in the page cache.
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(8 * MiB):
                if not fresh:
                    digest.update(chunk)
        sha = digest.hexdigest() if not fresh else entry["sha256"]
        manifest[name] = {"size": size, "mtime_ns": path.stat().st_mtime_ns, "sha256": sha}
        files[name] = BenchFile(name, path, size, sha)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return files


def read_slice(file: BenchFile, start: int, stop: int) -> bytes:
    with file.path.open("rb") as f:
        return os.pread(f.fileno(), stop - start, start)


# -- machine and load --------------------------------------------------------


def find_executable(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(_SBIN)
    return shutil.which(name, path=path)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = {}
    for dist in (
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "granian",
        "gunicorn",
        "flask",
        "werkzeug",
        "django",
        "zcmiddleware",
    ):
        try:
            from importlib.metadata import version

            packages[dist] = version(dist)
        except Exception:
            packages[dist] = "not installed"
    nginx = find_executable("nginx")
    wrk = find_executable("wrk")
    return {
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "nginx": _version([nginx, "-v"]) if nginx else "not installed",
        "wrk": _version([wrk, "--version"]) if wrk else "not installed",
    }


def git_commit() -> str:
    """The commit the run measured (with "+dirty" when the tree has changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT_DIR, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies of every CPU, from /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]  # idle + iowait
            total = sum(v[:8])  # guest time is already inside user
            out.append((total - idle, total))
    return out


def busy_fractions(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> list[float]:
    return [
        round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else 0.0
        for (b0, t0), (b1, t1) in zip(before, after, strict=False)
    ]


def other_test_runs() -> list[str]:
    """Command lines of pytest processes running on the machine (they skew numbers)."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "pytest" in cmd and "test_benchmarks_smoke" not in cmd:
                found.append(cmd.strip()[:120])
    return found


# -- process tree CPU --------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (ppid, utime+stime+cutime+cstime in seconds, comm) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm, _, rest = raw.partition("(")[2].rpartition(")")
        fields = rest.split()
        # fields[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
        ticks = sum(int(x) for x in fields[11:15])
        table[int(entry.name)] = (int(fields[1]), ticks / CLK_TCK, comm)
    return table


def tree_pids(root: int, table: dict[int, tuple[int, float, str]] | None = None) -> list[int]:
    table = table if table is not None else _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu_seconds(root: int, *, skip_comm: str | None = None) -> float:
    """CPU seconds of ``root`` and all its descendants (including reaped
    children, through cutime/cstime), leaving out processes named ``skip_comm``."""
    table = _proc_table()
    return sum(table[pid][1] for pid in tree_pids(root, table) if table[pid][2] != skip_comm)


def reset_peak_rss(root: int) -> None:
    """Reset VmHWM of the server tree (Linux: ``5`` in ``/proc/PID/clear_refs``), so
    that the next :func:`peak_rss` is the peak of one scenario, not of the run."""
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(root: int) -> int:
    """Sum of VmHWM (peak resident set, bytes) over the server tree."""
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


def settle(root: int, *, quiet: float = 0.02, interval: float = 0.25, limit: float = 15.0) -> bool:
    """Wait until the server tree stops using CPU (work left over from requests
    wrk abandoned at the end of a run). True if it went quiet within ``limit``."""
    deadline = time.monotonic() + limit
    last = tree_cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = tree_cpu_seconds(root)
        if now - last <= quiet:
            return True
        last = now
    return False


# -- servers -----------------------------------------------------------------


def cores() -> tuple[str | None, str | None]:
    """CPU lists for (server, load generator): two different cores, or no
    pinning at all when fewer than two are available."""
    avail = sorted(os.sched_getaffinity(0))
    if len(avail) < 2 or not find_executable("taskset"):
        return None, None
    return str(avail[0]), str(avail[1])


def pinned(argv: list[str], cpu: str | None) -> list[str]:
    if cpu is None:
        return argv
    return [find_executable("taskset") or "taskset", "-c", cpu, *argv]


def server_env(extra: Mapping[str, str], files_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT_DIR), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["ZC_BENCH_FILES"] = str(files_dir)
    env.update(extra)
    return env


def check_available(config: Config, env: Mapping[str, str]) -> str | None:
    """Why ``config`` cannot run here, or None if it can."""
    for exe in config.executables:
        if find_executable(exe) is None:
            return f"{exe} is not installed"
    if not config.requires:
        return None
    probe = (
        "import importlib, sys\n"
        "for req in sys.argv[1:]:\n"
        "    mod, _, attr = req.partition(':')\n"
        "    try:\n"
        "        m = importlib.import_module(mod)\n"
        "        if attr:\n"
        "            getattr(m, attr)\n"
        "    except Exception as exc:\n"
        "        print(f'{req}: {type(exc).__name__}: {exc}'.splitlines()[0])\n"
        "        sys.exit(1)\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe, *config.requires],
            env=dict(env),
            cwd=ROOT_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "import check timed out"
    if out.returncode != 0:
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[-1] if lines else f"import check exited {out.returncode}"
    return None


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        text = ""
        for p in sorted(self.workdir.glob("*.log")):
            text += p.read_text(errors="replace")
        return text[-4000:]


def log_summary(workdir: Path) -> dict[str, Any]:
    """How many errors (Python tracebacks, nginx [error]/[crit] lines) the server logged,
    and the last few of them: a server can answer every request and still log
    failures (for example on connections wrk closes at the end of a run)."""
    errors, tail = 0, []
    for p in sorted(workdir.glob("*.log")):
        for line in p.read_text(errors="replace").splitlines():
            if line.startswith("Traceback (most recent call last)") or re.search(
                r"\[(error|crit|alert|emerg)\]", line
            ):
                errors += 1
            if re.match(r"[\w.]*(Error|Exception)\b.*:", line) or "[error]" in line:
                tail.append(line.strip()[:300])
    return {"errors": errors, "tail": tail[-5:]}


def _format(template: str, values: Mapping[str, str]) -> str:
    return template.format(**values)


def _http_ready(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/files/4k.bin")
        resp = conn.getresponse()
        resp.read()
        return resp.status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def run_server(
    config: Config, *, files_dir: Path, workdir: Path, cpu: str | None
) -> Iterator[Server]:
    """Start ``config`` in its own process group, yield once it answers HTTP,
    then stop that process group (and nothing else)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    values = {
        "python": sys.executable,
        "port": str(port),
        # An app server behind an nginx listening on {port}.
        "app_port": str(free_port()),
        "host": HOST,
        "workdir": str(workdir),
        "files": str(files_dir),
        "nginx": find_executable("nginx") or "nginx",
    }
    for name, template in config.files:
        (workdir / name).write_text(_format(template, values))
    argv = pinned([_format(a, values) for a in config.argv], cpu)
    env = server_env(dict(config.env), files_dir)
    with (workdir / "server.log").open("wb") as log:
        process = spawn(argv, env=env, cwd=ROOT_DIR, log=log)
    server = Server(process, port, workdir)
    try:
        deadline = time.monotonic() + config.ready_timeout
        while not _http_ready(port):
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {config.ready_timeout}s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(server)


def stop(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    stop_process(server.process, timeout)


# -- checking the bytes ------------------------------------------------------


@dataclass
class Check:
    name: str
    range: str | None
    status: int = 0
    ok: bool = False
    detail: str = ""


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    supports_range: bool = False
    supports_multipart: bool = False

    @property
    def bytes_ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


_CONTENT_RANGE = re.compile(rb"content-range:\s*bytes (\d+)-(\d+)/(\d+)", re.IGNORECASE)


def _parse_multipart(body: bytes, boundary: bytes) -> list[tuple[int, int, bytes]]:
    """Parts of a multipart/byteranges body as (start, stop, data); each
    part's length comes from its own Content-Range, so the boundary string may
    appear inside the data."""
    parts: list[tuple[int, int, bytes]] = []
    delim = b"--" + boundary
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("no boundary in body")
    while True:
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            return parts
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise ValueError("part without header end")
        match = _CONTENT_RANGE.search(body[pos:head_end])
        if match is None:
            raise ValueError("part without Content-Range")
        start, last = int(match[1]), int(match[2])
        data_start = head_end + 4
        data = body[data_start : data_start + last - start + 1]
        parts.append((start, last + 1, data))
        pos = body.find(b"\r\n" + delim, data_start + len(data))
        if pos != data_start + len(data):
            raise ValueError(f"part {start}-{last} is not followed by the boundary")
        pos += 2


def _check(
    port: int, file: BenchFile, name: str, range_header: str | None, expect: list[tuple[int, int]]
) -> Check:
    """GET ``file`` (with ``range_header``) and compare the bytes with the file.
    A 200 answer to a Range is correct HTTP (the server ignored it); its body is
    not read for the large file."""
    check = Check(name, range_header)
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        headers = {"Range": range_header} if range_header else {}
        conn.request("GET", f"/files/{file.name}", headers=headers)
        resp = conn.getresponse()
        check.status = resp.status
        ctype = resp.getheader("Content-Type", "")
        if resp.status == 200:
            if range_header and file.size > 64 * MiB:
                check.ok, check.detail = True, "range ignored (200); body not read"
                return check
            digest = hashlib.sha256()
            got = 0
            while chunk := resp.read(1 * MiB):
                digest.update(chunk)
                got += len(chunk)
            check.ok = digest.hexdigest() == file.sha256 and got == file.size
            check.detail = "range ignored (200), " if range_header else ""
            check.detail += f"sha256 {'matches' if check.ok else 'DIFFERS'} ({got} bytes)"
        elif resp.status == 206 and ctype.startswith("multipart/byteranges"):
            boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
            body = resp.read()
            parts = _parse_multipart(body, boundary)
            got_ranges = [(a, b) for a, b, _ in parts]
            bad = [(a, b) for a, b, data in parts if data != read_slice(file, a, b)]
            check.ok = not bad and got_ranges == expect
            check.detail = f"multipart, {len(parts)} parts" + (
                f"; wrong bytes in {bad}" if bad else ""
            )
            if got_ranges != expect:
                check.detail += f"; parts {got_ranges} != requested {expect}"
        elif resp.status == 206:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", resp.getheader("Content-Range", ""))
            body = resp.read()
            if m is None:
                check.detail = f"bad Content-Range {resp.getheader('Content-Range')!r}"
                return check
            start, stop = int(m[1]), int(m[2]) + 1
            expected = read_slice(file, start, stop)
            same = hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()
            check.ok = same and int(m[3]) == file.size and [(start, stop)] == expect[:1]
            check.detail = f"single part {start}-{stop - 1}, sha256 " + (
                "matches" if same else "DIFFERS"
            )
            if len(expect) > 1:
                check.detail += f" (asked {len(expect)} ranges, got one part)"
                check.ok = same  # coalescing is allowed by RFC 9110 §14.2
        elif resp.status == 416 and len(expect) > 1:
            # Werkzeug refuses every multi-range request: no bytes, nothing wrong.
            check.ok, check.detail = True, "multiple ranges refused (416)"
            resp.read()
        else:
            check.detail = f"unexpected status {resp.status}"
            resp.read()
        return check
    except (OSError, http.client.HTTPException, ValueError) as exc:
        check.ok, check.detail = False, f"{type(exc).__name__}: {exc}"
        return check
    finally:
        conn.close()


def verify(port: int, files: Mapping[str, BenchFile], *, full_large: bool) -> Verification:
    """Full GETs and a few ranges (single, suffix, open-ended, multipart)."""
    big, mid, small = files["1g.bin"], files["64m.bin"], files["4k.bin"]
    v = Verification()
    v.checks.append(_check(port, small, "full 4 KiB", None, []))
    v.checks.append(_check(port, mid, "full 64 MiB", None, []))
    if full_large:
        v.checks.append(_check(port, big, "full 1 GiB", None, []))
    a = 123_456_789
    single = _check(port, big, "1 MiB range", f"bytes={a}-{a + MiB - 1}", [(a, a + MiB)])
    v.checks.append(single)
    v.checks.append(_check(port, mid, "suffix range", "bytes=-1000", [(mid.size - 1000, mid.size)]))
    v.checks.append(
        _check(port, mid, "open-ended range", "bytes=67000000-", [(67_000_000, mid.size)])
    )
    spans = [(0, 100), (5_000_000, 5_262_144), (700_000_001, 700_300_000)]
    spec = ",".join(f"{s}-{e - 1}" for s, e in spans)
    multi = _check(port, big, "multipart 3 ranges", f"bytes={spec}", spans)
    v.checks.append(multi)
    v.supports_range = single.ok and single.status == 206
    v.supports_multipart = multi.ok and multi.status == 206 and multi.detail.startswith("multi")
    return v


# -- load --------------------------------------------------------------------


@dataclass
class LoadResult:
    duration_s: float
    requests: int
    bytes: int
    errors: dict[str, int]
    latency_us: dict[str, float]
    server_cpu_s: float
    #: The server tree without its nginx processes: the Python worker(s) behind nginx.
    worker_cpu_s: float
    client_cpu_s: float
    wall_s: float
    core_busy: list[float]
    loadavg: list[float]
    settled: bool
    #: Peak resident set of the server tree during the run (VmHWM, reset before it).
    peak_rss_bytes: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.duration_s / 1e6

    @property
    def req_per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def cpu_s_per_gb(self) -> float:
        return self.server_cpu_s / (self.bytes / 1e9) if self.bytes else float("inf")

    @property
    def cpu_us_per_req(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("inf")

    def to_json(self, cores: tuple[str | None, str | None] = (None, None)) -> dict[str, Any]:
        out = dict(self.__dict__)
        # CPU the rest of the machine used on our two cores during the run.
        for key, core, own in (
            ("server_core_other", cores[0], self.server_cpu_s),
            ("client_core_other", cores[1], self.client_cpu_s),
        ):
            if core is not None and int(core) < len(self.core_busy):
                out[key] = round(max(self.core_busy[int(core)] - own / self.wall_s, 0.0), 3)
        out.update(
            mb_per_s=round(self.mb_per_s, 2),
            req_per_s=round(self.req_per_s, 2),
            # None rather than infinity: JSON has no infinity.
            cpu_s_per_gb=round(self.cpu_s_per_gb, 4) if self.bytes else None,
            worker_cpu_s_per_gb=(
                round(self.worker_cpu_s / (self.bytes / 1e9), 4) if self.bytes else None
            ),
            cpu_us_per_req=round(self.cpu_us_per_req, 1) if self.requests else None,
            # Everything both cores did (server, wrk, softirq, anything else), per GB:
            # on loopback the receive path runs partly in the sender's context, partly
            # in the reader's, so this is the split-independent view.
            machine_cpu_s_per_gb=(
                round(sum(self.core_busy) * self.wall_s / (self.bytes / 1e9), 4)
                if self.bytes
                else None
            ),
            server_cpu_util=round(self.server_cpu_s / self.wall_s, 3),
            peak_rss_mib=round(self.peak_rss_bytes / MiB, 1),
            client_cpu_util=round(self.client_cpu_s / self.wall_s, 3),
        )
        return out


def lua_script(scenario: Scenario, workdir: Path) -> Path:
    path = workdir / f"{scenario.name}.lua"
    path.write_text((LUA_DIR / scenario.script).read_text() + (LUA_DIR / "report.lua").read_text())
    return path


def run_load(
    server: Server,
    scenario: Scenario,
    *,
    duration: float,
    cpu: str | None,
    wrk_timeout: float = 30.0,
) -> LoadResult:
    """Drive ``server`` with wrk for ``duration`` seconds (one wrk thread) and
    measure the server tree's CPU over exactly that window."""
    wrk = find_executable("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    script = lua_script(scenario, server.workdir)
    argv = pinned(
        [
            wrk,
            "-t1",
            f"-c{scenario.connections}",
            f"-d{max(duration, 1):g}s",
            f"--timeout={wrk_timeout:g}s",
            "-s",
            str(script),
            f"http://{HOST}:{server.port}/files/{scenario.file}",
            "--",
            *map(str, scenario.script_args),
        ],
        cpu,
    )
    reset_peak_rss(server.pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker0 = tree_cpu_seconds(server.pid, skip_comm="nginx")
    stat0, cpu0, t0 = cpu_times(), tree_cpu_seconds(server.pid), time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + wrk_timeout + 30)
    cpu1, t1, stat1 = tree_cpu_seconds(server.pid), time.monotonic(), cpu_times()
    worker1 = tree_cpu_seconds(server.pid, skip_comm="nginx")
    peak = peak_rss(server.pid)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((s for s in out.stdout.splitlines() if s.startswith("ZCBENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr}")
    summary = json.loads(line.removeprefix("ZCBENCH "))
    settled = settle(server.pid)
    client = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return LoadResult(
        duration_s=summary["duration_us"] / 1e6,
        requests=summary["requests"],
        bytes=summary["bytes"],
        errors=summary["errors"],
        latency_us=summary["latency_us"],
        server_cpu_s=round(cpu1 - cpu0, 3),
        worker_cpu_s=round(worker1 - worker0, 3),
        client_cpu_s=round(client, 3),
        wall_s=round(t1 - t0, 3),
        core_busy=busy_fractions(stat0, stat1),
        loadavg=[round(x, 2) for x in os.getloadavg()],
        settled=settled,
        peak_rss_bytes=peak,
    )
