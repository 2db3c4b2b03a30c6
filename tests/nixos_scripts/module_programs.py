"""The orchestrator module's programs (nixos/scripts/), run as writeShellApplication makes them.

eval-scripts.nix gives what nixos/scripts/default.nix declares for each program: the script
text (read from the file beside it) and its runtimeInputs. `program()` writes that text behind
the lines writeShellApplication puts first (nixpkgs pkgs/build-support/trivial-builders:
errexit, nounset, pipefail, then the runtimeInputs' bin/ before PATH) and gives it a PATH with
the programs of exactly those runtimeInputs (declared_programs.py), so a program the script
calls but the module does not declare is missing here as it would be on the host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from declared_programs import path_of
from support import require_tool

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-scripts.nix"
SCRIPTS = REPO / "nixos" / "scripts"


@cache
def declared() -> dict[str, dict[str, object]]:
    """nixos/scripts/default.nix evaluated with stand-in packages."""
    result = subprocess.run(
        [
            require_tool("Nix (nix-instantiate)", shutil.which("nix-instantiate")),
            "--eval",
            "--strict",
            "--json",
            str(EVAL),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    value: dict[str, dict[str, object]] = json.loads(result.stdout)
    return value


@dataclass
class Program:
    """One of the module's programs, installed in a test folder."""

    path: Path
    bin_path: str

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run it with only the given environment (and its runtimeInputs on PATH)."""
        return subprocess.run(
            [str(self.path), *args],
            env={"PATH": self.bin_path, **env},
            capture_output=True,
            text=True,
            check=False,
        )


def program(attribute: str, folder: Path) -> Program:
    """The program `attribute` of nixos/scripts, as writeShellApplication would write it."""
    spec = declared()[attribute]
    inputs = spec["runtimeInputs"]
    assert isinstance(inputs, list)
    bin_path = path_of([str(i) for i in inputs], folder / "runtime-inputs")
    path = folder / str(spec["name"])
    path.write_text(
        "#!/bin/bash\nset -o errexit\nset -o nounset\nset -o pipefail\n\n"
        f'export PATH="{bin_path}:$PATH"\n\n{spec["text"]}'
    )
    path.chmod(0o755)
    # The caller's PATH is empty: the unit runs it with systemd's PATH, which holds none of
    # what it needs beyond the runtimeInputs.
    return Program(path, "/nonexistent")
