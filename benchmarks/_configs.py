"""What the benchmark runs: configurations, scenarios and targets, as data.

Each :class:`Config` is a declarative entry (argv template, extra env, the app
it loads, what must be importable or installed); the harness fills in
``{python}``, ``{port}``, ``{host}``, ``{workdir}``, ``{files}`` and
``{nginx}``. A configuration whose requirement is missing is reported as
unavailable and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: name -> size of the files the harness generates.
FILES: dict[str, int] = {
    "1g.bin": GiB,
    "64m.bin": 64 * MiB,
    "64k.bin": 64 * KiB,
    "4k.bin": 4 * KiB,
}


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    argv: tuple[str, ...]
    #: "module" or "module:attribute" that must import in the server's Python.
    requires: tuple[str, ...] = ()
    #: Executables that must be found (on PATH, /usr/sbin or /sbin).
    executables: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: Files written into the per-run work directory before starting
    #: (name -> template, formatted like argv).
    files: tuple[tuple[str, str], ...] = ()
    #: The configuration this one is compared with as "the plain app".
    baseline: str | None = None
    #: Included in ``--smoke`` runs.
    smoke: bool = False
    #: Seconds to wait for the server to answer.
    ready_timeout: float = 30.0
    #: Part of the full run (variants for investigation run only with --only).
    default: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    file: str
    connections: int
    #: Lua script in benchmarks/lua/ and its arguments (after ``--``).
    script: str = "get.lua"
    script_args: tuple[int, ...] = ()
    #: Only run where verification showed the server answers this kind of
    #: request with 206 (a 200 full body would measure something else).
    needs: Literal["range", "multipart"] | None = None


@dataclass(frozen=True)
class Target:
    """``metric(config, scenario) op threshold * metric(reference, scenario)``."""

    key: str
    text: str
    config: str
    reference: str
    scenarios: tuple[str, ...]
    metric: Literal["mb_per_s", "req_per_s", "cpu_s_per_gb"]
    op: Literal[">=", "<="]
    threshold: float
    note: str = ""


HOST = "127.0.0.1"

_UVICORN = ("{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}")
_UVICORN_QUIET = ("--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "60")
_ZC_HTTP = "zcmiddleware.uvicorn:AutoHTTPProtocol"
_GUNICORN = (
    "{python}",
    "-m",
    "gunicorn",
    "--bind",
    "{host}:{port}",
    "--worker-class",
    "gthread",
    "--workers",
    "1",
    "--threads",
    "8",
    "--keep-alive",
    "60",
    "--log-level",
    "warning",
)
_GRANIAN = (
    "{python}",
    "-m",
    "granian",
    "--interface",
    "asgi",
    "--host",
    "{host}",
    "--port",
    "{port}",
    "--workers",
    "1",
    "--runtime-threads",
    "1",
    "--loop",
    "uvloop",
    "--no-ws",
    "--log-level",
    "warning",
    "--no-access-log",
)

# gunicorn's native ASGI worker (-k asgi) and zcmiddleware's variant of it.
_GUNICORN_ASGI = (
    "{python}",
    "-m",
    "gunicorn",
    "--bind",
    "{host}:{port}",
    "--workers",
    "1",
    "--keep-alive",
    "60",
    "--log-level",
    "warning",
    "--worker-class",
)

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen {host}:{port};
        location /files/ {{ alias {files}/; }}
    }}
}}
"""

# nginx in front of one app server on {app_port}, with docs/deployment.md's locations:
# everything proxied, and the internal location the app's X-Accel-Redirect points to.
NGINX_PROXY_CONF = NGINX_CONF.replace(
    "    server {{",
    """    upstream app {{ server {host}:{app_port}; keepalive 16; }}
    server {{""",
).replace(
    "        location /files/ {{ alias {files}/; }}",
    """        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # The workers run as nobody and cannot write the work directory: no
            # spooling of large proxied bodies to disk, nginx reads them as it sends.
            proxy_max_temp_file_size 0;
        }}
        location /_zc/files/ {{
            internal;
            alias {files}/;
            etag off;
            if_modified_since off;
            add_header ETag $upstream_http_etag;
            add_header Last-Modified $upstream_http_last_modified;
            add_header Vary $upstream_http_vary;
        }}""",
)
_NGINX_ARGV = (
    "{nginx}",
    "-p",
    "{workdir}",
    "-e",
    "{workdir}/error.log",
    "-c",
    "{workdir}/nginx.conf",
)
_BEHIND_NGINX = (
    (_UVICORN[0], *_UVICORN[1:4], "{host}", "--port", "{app_port}")
    + _UVICORN_QUIET
    + ("--http", _ZC_HTTP, "--loop", "uvloop")
)
_GUNICORN_BEHIND_NGINX = tuple(
    "{host}:{app_port}" if a == "{host}:{port}" else a for a in _GUNICORN
)


# Start nginx once the app accepts connections (no "connection refused" in its log).
_WAIT_FOR_APP = (
    "until {python} -c \"import socket; socket.create_connection(('{host}', {app_port}), 1)\""
    " 2>/dev/null; do sleep 0.2; done;"
)


def _behind_nginx(name: str, label: str, app_argv: tuple[str, ...], app: str) -> Config:
    """nginx on {port} in front of ``app_argv`` on {app_port}; one process group (the
    shell execs nginx, whose master becomes the app server's parent)."""
    return Config(
        name=name,
        label=label,
        argv=("/bin/sh", "-c", " ".join((*app_argv, "&", _WAIT_FOR_APP, "exec", *_NGINX_ARGV))),
        requires=(app,),
        executables=("nginx",),
        files=(("nginx.conf", NGINX_PROXY_CONF),),
        baseline="nginx",
        # Not in the full run: python -m benchmarks.run --only <these names> (the
        # command is in docs/deployment.md).
        default=False,
    )


CONFIGS: tuple[Config, ...] = (
    Config(
        name="nginx",
        label="nginx, sendfile on (reference)",
        argv=_NGINX_ARGV,
        executables=("nginx",),
        files=(("nginx.conf", NGINX_CONF),),
    ),
    # nginx variants, not in the default run: how much the reference depends on
    # its TCP settings on loopback (see docs/benchmarks.md).
    Config(
        name="nginx-nopush-off",
        label="nginx, sendfile on, tcp_nopush off",
        argv=_NGINX_ARGV,
        executables=("nginx",),
        files=(("nginx.conf", NGINX_CONF.replace("tcp_nopush on;", "tcp_nopush off;")),),
        default=False,
    ),
    Config(
        name="nginx-sendfile-off",
        label="nginx, sendfile off (read + write, 2 x 256 KiB buffers)",
        argv=_NGINX_ARGV,
        executables=("nginx",),
        files=(
            (
                "nginx.conf",
                NGINX_CONF.replace("sendfile on;", "sendfile off; output_buffers 2 256k;"),
            ),
        ),
        default=False,
    ),
    Config(
        name="starlette-uvicorn",
        label="Starlette FileResponse, stock uvicorn (httptools, uvloop)",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "benchmarks.apps.starlette_plain:app",
        ),
        requires=("starlette", "uvicorn", "httptools", "uvloop"),
        smoke=True,
    ),
    Config(
        name="starlette-zc-uvicorn",
        label="Starlette + ZeroCopyMiddleware, stock uvicorn (fallback)",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "benchmarks.apps.starlette_zc:app",
        ),
        requires=("zcmiddleware:ZeroCopyMiddleware", "benchmarks.apps.starlette_zc"),
        baseline="starlette-uvicorn",
    ),
    Config(
        name="starlette-zcuvicorn-uvloop",
        label="Starlette (no middleware), zcmiddleware.uvicorn, uvloop",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            _ZC_HTTP,
            "--loop",
            "uvloop",
            "benchmarks.apps.starlette_plain:app",
        ),
        requires=("zcmiddleware.uvicorn:AutoHTTPProtocol",),
        baseline="starlette-uvicorn",
    ),
    Config(
        name="starlette-zc-zcuvicorn-asyncio",
        label="Starlette + ZeroCopyMiddleware, zcmiddleware.uvicorn, asyncio",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            _ZC_HTTP,
            "--loop",
            "asyncio",
            "benchmarks.apps.starlette_zc:app",
        ),
        requires=(
            "zcmiddleware:ZeroCopyMiddleware",
            "zcmiddleware.uvicorn:AutoHTTPProtocol",
            "benchmarks.apps.starlette_zc",
        ),
        baseline="starlette-uvicorn",
    ),
    Config(
        name="starlette-zc-zcuvicorn-uvloop",
        label="Starlette + ZeroCopyMiddleware, zcmiddleware.uvicorn, uvloop",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            _ZC_HTTP,
            "--loop",
            "uvloop",
            "benchmarks.apps.starlette_zc:app",
        ),
        requires=(
            "zcmiddleware:ZeroCopyMiddleware",
            "zcmiddleware.uvicorn:AutoHTTPProtocol",
            "benchmarks.apps.starlette_zc",
        ),
        baseline="starlette-uvicorn",
        smoke=True,
    ),
    Config(
        name="starlette-granian",
        label="Starlette FileResponse, granian (pathsend)",
        argv=(*_GRANIAN, "benchmarks.apps.starlette_plain:app"),
        requires=("granian", "starlette"),
        baseline="starlette-uvicorn",
    ),
    Config(
        name="starlette-zc-granian",
        label="Starlette + ZeroCopyMiddleware, granian (pathsend)",
        argv=(*_GRANIAN, "benchmarks.apps.starlette_zc:app"),
        requires=("granian", "zcmiddleware:ZeroCopyMiddleware", "benchmarks.apps.starlette_zc"),
        baseline="starlette-granian",
    ),
    # The two cheapest layers a middleware can be, on the same server: the floor of
    # the middleware-on-granian ratios (benchmarks.pairs' reference ratios).
    *(
        Config(
            name=f"starlette-{layer}-granian",
            label=f"Starlette behind {what}, granian",
            argv=(*_GRANIAN, f"benchmarks.apps.starlette_layers:{layer}_app"),
            requires=("granian", "starlette"),
            baseline="starlette-granian",
            default=False,
        )
        for layer, what in (
            ("passthrough", "a pass-through ASGI layer"),
            ("holding", "a layer that holds the start"),
        )
    ),
    Config(
        name="starlette-gunicorn-asgi",
        label="Starlette FileResponse, gunicorn -k asgi",
        argv=(*_GUNICORN_ASGI, "asgi", "benchmarks.apps.starlette_plain:app"),
        requires=("gunicorn.workers.gasgi", "starlette"),
        default=False,
    ),
    Config(
        name="starlette-zc-gunicorn-asgi",
        label="Starlette + ZeroCopyMiddleware, gunicorn -k asgi (fallback)",
        argv=(*_GUNICORN_ASGI, "asgi", "benchmarks.apps.starlette_zc:app"),
        requires=("gunicorn.workers.gasgi", "benchmarks.apps.starlette_zc"),
        baseline="starlette-gunicorn-asgi",
        default=False,
    ),
    Config(
        name="starlette-zc-zcgunicorn-asgi",
        label="Starlette + ZeroCopyMiddleware, gunicorn -k zcmiddleware.gunicorn.ASGIWorker",
        argv=(
            *_GUNICORN_ASGI,
            "zcmiddleware.gunicorn.ASGIWorker",
            "benchmarks.apps.starlette_zc:app",
        ),
        requires=("zcmiddleware.gunicorn:ASGIWorker", "benchmarks.apps.starlette_zc"),
        baseline="starlette-gunicorn-asgi",
        default=False,
    ),
    Config(
        name="flask-gunicorn",
        label="Flask send_file, gunicorn gthread",
        argv=(*_GUNICORN, "benchmarks.apps.flask_plain:app"),
        requires=("flask", "gunicorn"),
    ),
    Config(
        name="flask-zc-gunicorn",
        label="Flask + ZeroCopyWSGIMiddleware, gunicorn gthread",
        argv=(*_GUNICORN, "benchmarks.apps.flask_zc:app"),
        requires=("zcmiddleware:ZeroCopyWSGIMiddleware", "benchmarks.apps.flask_zc"),
        baseline="flask-gunicorn",
    ),
    Config(
        name="django-gunicorn",
        label="Django FileResponse, gunicorn gthread",
        argv=(*_GUNICORN, "benchmarks.apps.django_plain:application"),
        requires=("django", "gunicorn"),
    ),
    Config(
        name="django-zc-gunicorn",
        label="Django + ZeroCopyWSGIMiddleware, gunicorn gthread",
        argv=(*_GUNICORN, "benchmarks.apps.django_zc:application"),
        requires=("zcmiddleware:ZeroCopyWSGIMiddleware", "benchmarks.apps.django_zc"),
        baseline="django-gunicorn",
    ),
    # Behind nginx (docs/deployment.md): without offload every byte goes through the
    # worker and nginx's proxy buffers; with accel_redirect nginx sends the file.
    _behind_nginx(
        "nginx-starlette-zc",
        "nginx -> Starlette + ZeroCopyMiddleware, zcmiddleware.uvicorn (proxied)",
        (*_BEHIND_NGINX, "benchmarks.apps.starlette_zc:app"),
        "benchmarks.apps.starlette_zc",
    ),
    _behind_nginx(
        "nginx-starlette-accel",
        "nginx -> Starlette + ZeroCopyMiddleware(accel_redirect), zcmiddleware.uvicorn",
        (*_BEHIND_NGINX, "benchmarks.apps.starlette_accel:app"),
        "benchmarks.apps.starlette_accel",
    ),
    _behind_nginx(
        "nginx-flask-zc",
        "nginx -> Flask + ZeroCopyWSGIMiddleware, gunicorn gthread (proxied)",
        (*_GUNICORN_BEHIND_NGINX, "benchmarks.apps.flask_zc:app"),
        "benchmarks.apps.flask_zc",
    ),
    _behind_nginx(
        "nginx-flask-accel",
        "nginx -> Flask + ZeroCopyWSGIMiddleware(accel_redirect), gunicorn gthread",
        (*_GUNICORN_BEHIND_NGINX, "benchmarks.apps.flask_accel:app"),
        "benchmarks.apps.flask_accel",
    ),
    Config(
        name="django-asgi-uvicorn",
        label="Django FileResponse, ASGIHandler, stock uvicorn (httptools, uvloop)",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "benchmarks.apps.django_asgi_plain:application",
        ),
        requires=("django", "uvicorn", "httptools", "uvloop"),
    ),
    Config(
        name="django-zc-asgi-uvicorn",
        label="Django + zcmiddleware.django, stock uvicorn (fallback)",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "benchmarks.apps.django_asgi_zc:application",
        ),
        requires=("zcmiddleware.django", "benchmarks.apps.django_asgi_zc"),
        baseline="django-asgi-uvicorn",
    ),
    Config(
        name="django-zc-asgi-zcuvicorn",
        label="Django + zcmiddleware.django, zcmiddleware.uvicorn, uvloop",
        argv=(
            *_UVICORN,
            *_UVICORN_QUIET,
            "--http",
            _ZC_HTTP,
            "--loop",
            "uvloop",
            "benchmarks.apps.django_asgi_zc:application",
        ),
        requires=(
            "zcmiddleware.django",
            "zcmiddleware.uvicorn:AutoHTTPProtocol",
            "benchmarks.apps.django_asgi_zc",
        ),
        baseline="django-asgi-uvicorn",
    ),
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("1g-1c", "1 GiB file, 1 connection", "1g.bin", 1),
    Scenario("64m-8c", "64 MiB file, 8 connections", "64m.bin", 8),
    Scenario(
        "range1m-8c",
        "random 1 MiB range of 1 GiB, 8 connections",
        "1g.bin",
        8,
        script="range.lua",
        script_args=(GiB, MiB),
        needs="range",
    ),
    Scenario(
        "multirange-8c",
        "4 random 256 KiB ranges (multipart) of 1 GiB, 8 connections",
        "1g.bin",
        8,
        script="multirange.lua",
        script_args=(GiB, 256 * KiB, 4),
        needs="multipart",
    ),
    Scenario("64k-32c", "64 KiB file, 32 connections", "64k.bin", 32),
    Scenario("4k-32c", "4 KiB file, 32 connections", "4k.bin", 32),
)

_ZC_UVICORN = ("starlette-zc-zcuvicorn-uvloop", "starlette-zc-zcuvicorn-asyncio")

#: The issue's targets (issue 6). "No slower" / "≥ the plain app" are checked
#: with a 5 % noise band, stated in the text.
TARGETS: tuple[Target, ...] = (
    *(
        t
        for cfg in _ZC_UVICORN
        for t in (
            Target(
                f"{cfg}:1g-vs-nginx",
                "1 GiB download ≥ 0.9× nginx",
                cfg,
                "nginx",
                ("1g-1c",),
                "mb_per_s",
                ">=",
                0.9,
            ),
            Target(
                f"{cfg}:1g-cpu-vs-nginx",
                "1 GiB CPU-s/GB ≤ 1.3× nginx",
                cfg,
                "nginx",
                ("1g-1c",),
                "cpu_s_per_gb",
                "<=",
                1.3,
            ),
            Target(
                f"{cfg}:range-vs-nginx",
                "random 1 MiB ranges ≥ 0.8× nginx",
                cfg,
                "nginx",
                ("range1m-8c",),
                "mb_per_s",
                ">=",
                0.8,
            ),
            Target(
                f"{cfg}:vs-plain",
                "≥ 3× plain Starlette on stock uvicorn",
                cfg,
                "starlette-uvicorn",
                ("1g-1c", "range1m-8c"),
                "mb_per_s",
                ">=",
                3.0,
            ),
            Target(
                f"{cfg}:4k-vs-plain",
                "4 KiB req/s ≥ 1.5× plain Starlette on stock uvicorn",
                cfg,
                "starlette-uvicorn",
                ("4k-32c",),
                "req_per_s",
                ">=",
                1.5,
            ),
        )
    ),
    Target(
        "flask-zc:range-vs-nginx",
        "random 1 MiB ranges ≥ 0.8× nginx",
        "flask-zc-gunicorn",
        "nginx",
        ("range1m-8c",),
        "mb_per_s",
        ">=",
        0.8,
    ),
    Target(
        "flask-zc:full-vs-plain",
        "full downloads no slower than plain Flask (5 % band)",
        "flask-zc-gunicorn",
        "flask-gunicorn",
        ("1g-1c", "64m-8c"),
        "mb_per_s",
        ">=",
        0.95,
    ),
    *(
        Target(
            f"{cfg}:4k-overhead",
            "4 KiB req/s with the middleware ≥ plain app, same server (5 % band)",
            cfg,
            base,
            ("4k-32c",),
            "req_per_s",
            ">=",
            0.95,
        )
        for cfg, base in (
            ("starlette-zc-uvicorn", "starlette-uvicorn"),
            ("starlette-zc-zcuvicorn-uvloop", "starlette-zcuvicorn-uvloop"),
            ("starlette-zc-granian", "starlette-granian"),
            ("flask-zc-gunicorn", "flask-gunicorn"),
            ("django-zc-gunicorn", "django-gunicorn"),
        )
    ),
)


@dataclass
class Selection:
    configs: list[Config] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)


def select(only: list[str] | None, scenarios: list[str] | None, smoke: bool) -> Selection:
    """Configurations and scenarios to run. An ``only`` entry matches a config
    name exactly, or else as a substring of the default configs' names;
    ``smoke`` picks the smoke configs unless ``only`` is given."""
    if only:
        names: set[str] = set()
        for o in only:
            exact = [c.name for c in CONFIGS if c.name == o]
            matched = exact or [c.name for c in CONFIGS if o in c.name and c.default]
            if not matched:
                raise SystemExit(f"unknown configuration: {o}")
            names.update(matched)
        configs = [c for c in CONFIGS if c.name in names]
    elif smoke:
        configs = [c for c in CONFIGS if c.smoke]
    else:
        configs = [c for c in CONFIGS if c.default]
    chosen = [s for s in SCENARIOS if not scenarios or s.name in scenarios]
    if scenarios and len(chosen) != len(scenarios):
        raise SystemExit(f"unknown scenario in {scenarios}; known: {[s.name for s in SCENARIOS]}")
    return Selection(configs, chosen)
