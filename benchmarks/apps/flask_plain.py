"""Plain Flask: ``send_file`` (Range handled by Werkzeug)."""

from __future__ import annotations

from flask import Flask, abort, send_file
from flask.typing import ResponseReturnValue

from benchmarks.apps import resolve

app = Flask(__name__)


@app.get("/files/<name>")
def serve_file(name: str) -> ResponseReturnValue:
    path = resolve(name)
    if path is None:
        abort(404)
    return send_file(path, conditional=True)
