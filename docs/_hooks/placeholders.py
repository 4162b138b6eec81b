"""mkdocs hook: a placeholder for a page that another branch adds.

``running.md`` links ``deployment.md`` (nginx, with and without offload), which is
written on its own branch. Until it is merged, the strict build gets a generated
page saying so instead of a broken link; once the file exists this does nothing.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

PLACEHOLDERS = {
    "deployment.md": (
        "# Behind nginx\n\n"
        "This page (nginx in front, with and without X-Accel-Redirect offload) is "
        "not written yet. Until it is, see [Running it](running.md).\n"
    ),
}


def on_files(files: Files, config: Any) -> Files:
    for name, content in PLACEHOLDERS.items():
        if files.get_file_from_path(name) is None:
            files.append(File.generated(config, name, content=content))
    return files
