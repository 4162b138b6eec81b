"""Run a WSGI test app on Werkzeug's development server: ``python -m
apps.wsgi_werkzeug_serve MODULE:ATTR PORT`` (Werkzeug offers no file_wrapper)."""

from __future__ import annotations

import importlib
import sys

from werkzeug.serving import run_simple

if __name__ == "__main__":
    module, _, attr = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(module), attr)
    run_simple("127.0.0.1", int(sys.argv[2]), app, threaded=True)
