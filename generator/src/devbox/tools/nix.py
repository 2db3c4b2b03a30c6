"""One function per Nix command devbox runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devbox.tools import process


class NixEvalError(Exception):
    """Nix could not evaluate a file; the message is Nix's own."""


def eval_file_json(path: Path) -> Any:
    """Evaluate a Nix file that needs no inputs (like users.nix) to its JSON value."""
    result = process.run(["nix-instantiate", "--eval", "--strict", "--json", str(path)])
    if not result.ok:
        raise NixEvalError(result.stderr.strip() or f"nix-instantiate exited {result.returncode}")
    return json.loads(result.stdout)
