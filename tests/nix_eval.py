"""Helpers for the tests that evaluate this repository's Nix with nixpkgs' lib alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import require_tool


def nixpkgs_lib() -> Path:
    """The nixpkgs library named by DEVBOX_NIXPKGS_LIB (a checkout, or its lib/ folder)."""
    root = os.environ.get("DEVBOX_NIXPKGS_LIB")
    if not root:
        message = (
            "DEVBOX_NIXPKGS_LIB is not set: point it at a checkout of nix-community/nixpkgs.lib "
            "(outside this repository; scripts/test.sh uses ../shared/vendor/nixpkgs.lib)"
        )
        if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; DEVBOX_REQUIRE_TOOLS=1 makes this a failure")
        pytest.skip(message)
    for candidate in (Path(root) / "lib", Path(root)):
        if (candidate / "default.nix").is_file() and (candidate / "modules.nix").is_file():
            return candidate
    pytest.fail(
        f"DEVBOX_NIXPKGS_LIB={root} holds no nixpkgs lib (lib/default.nix, lib/modules.nix)"
    )
    raise AssertionError  # unreachable: fail raises


def nix_instantiate() -> str:
    """nix-instantiate, or skip (fail under DEVBOX_REQUIRE_TOOLS=1) without it."""
    return require_tool("Nix (nix-instantiate)", shutil.which("nix-instantiate"))


def instantiate(
    path: Path, lib: Path | None = None, **args: str
) -> subprocess.CompletedProcess[str]:
    """`nix-instantiate --eval --strict --json PATH` with nixpkgs' lib and `--arg NAME VALUE`s.

    Read-only mode: a path the evaluation interpolates gets its store path without being
    copied into the store.
    """
    argv = [nix_instantiate(), "--readonly-mode", "--eval", "--strict", "--json", str(path)]
    argv += ["--arg", "lib", f"import {lib or nixpkgs_lib()}"]
    for name, value in args.items():
        argv += ["--arg", name, value]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def evaluate(path: Path, lib: Path | None = None, **args: str) -> Any:
    """The JSON value of a Nix file evaluated with nixpkgs' lib; its error fails the test."""
    result = instantiate(path, lib, **args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def evaluate_expression(expression: str) -> Any:
    """The JSON value of a Nix expression in which `lib` is nixpkgs' lib; its error fails.

    Read-only mode: a path the expression interpolates gets its store path without being
    copied into the store.
    """
    argv = [nix_instantiate(), "--readonly-mode", "--eval", "--strict", "--json"]
    argv += ["--arg", "lib", f"import {nixpkgs_lib()}", "--expr", f"{{ lib }}: {expression}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def nix_with_fileset() -> str:
    """A nix-instantiate with lib.fileset (Nix >= 2.14): setup.sh's, or one on PATH."""
    repo = Path(__file__).resolve().parent.parent
    candidates = [
        os.environ.get("DEVBOX_FILESET_NIX"),
        str(repo / ".tools/nix/bin/nix-instantiate"),
        shutil.which("nix-instantiate"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and nix_version(candidate) >= (2, 14):
            return candidate
    return require_tool("Nix >= 2.14 (lib.fileset; scripts/setup.sh installs it)", None)


def nix_version(nix: str) -> tuple[int, ...]:
    """The version a Nix program prints, as numbers; (0,) when it prints none."""
    result = subprocess.run([nix, "--version"], capture_output=True, text=True, check=False)
    words = result.stdout.split()
    if result.returncode != 0 or not words:
        return (0,)
    return tuple(int(part) for part in words[-1].split(".")[:2] if part.isdigit())
