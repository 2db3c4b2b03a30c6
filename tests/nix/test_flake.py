"""The flake's inputs and outputs, checked without fetching nixpkgs.

eval-flake.nix calls the flake's outputs function with nixpkgs' lib (from the
checkout of nix-community/nixpkgs.lib named by DEVBOX_NIXPKGS_LIB; skipped
without it) and stand-in inputs, so the outputs' shape is the real one: the
outputs the issue lists, for the systems they are meant for, and what the
nixosModules.orchestrator wrapper sets. flake.lock is checked against the
inputs without Nix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from nix_eval import evaluate, nix_with_fileset, nixpkgs_lib
from support import require_tool

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-flake.nix"
ALL_SYSTEMS = ["aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux"]


def flake_shape() -> dict[str, Any]:
    value: dict[str, Any] = evaluate(EVAL)
    return value


def test_inputs_follow_the_pinned_branches() -> None:
    inputs = flake_shape()["inputs"]
    assert inputs["nixpkgs"]["url"] == "github:NixOS/nixpkgs/nixos-26.05"
    assert inputs["home-manager"]["url"] == "github:nix-community/home-manager/release-26.05"
    assert inputs["home-manager"]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"


def test_the_lock_file_pins_exactly_these_inputs() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    nodes = lock["nodes"]
    assert nodes[lock["root"]]["inputs"] == {"nixpkgs": "nixpkgs", "home-manager": "home-manager"}
    assert nodes["home-manager"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert nodes["nixpkgs"]["original"] == {
        "owner": "NixOS",
        "ref": "nixos-26.05",
        "repo": "nixpkgs",
        "type": "github",
    }
    assert nodes["home-manager"]["original"]["ref"] == "release-26.05"


def test_packages_and_apps() -> None:
    shape = flake_shape()
    assert shape["packages"]["x86_64-linux"] == ["default", "devbox-ctl", "devcontainer"]
    for system in ALL_SYSTEMS:
        assert {"default", "devbox-ctl"} <= set(shape["packages"][system])
        assert shape["apps"][system] == {"default": "app", "devbox-ctl": "app"}
        assert shape["devShells"][system] == ["default"]
    # The image is built for every Linux system an orchestrator may run, not for macOS.
    assert shape["packages"]["aarch64-linux"] == ["default", "devbox-ctl", "devcontainer"]
    assert "devcontainer" not in shape["packages"]["aarch64-darwin"]
    assert shape["formatter"] == ALL_SYSTEMS


def test_checks() -> None:
    assert flake_shape()["checks"] == {
        "x86_64-linux": [
            "formatting",
            "generated-up-to-date",
            "orchestrator-vm",
            "pytest-nix",
            "quadlet",
        ]
    }


def test_modules() -> None:
    shape = flake_shape()
    modules = {name: Path(path).relative_to(REPO) for name, path in shape["homeModules"].items()}
    assert modules == {
        "cli": Path("home/modules/cli.nix"),
        "dev": Path("home/modules/dev.nix"),
        "git": Path("home/modules/git.nix"),
        "devcontainer": Path("home/modules/devcontainer.nix"),
        "default": Path("home/modules/devcontainer.nix"),
    }
    assert shape["nixosModules"] == ["default", "orchestrator"]
    wrapper = shape["orchestratorWrapper"]
    assert [Path(p).relative_to(REPO) for p in wrapper["imports"]] == [
        Path("nixos/orchestrator.nix")
    ]
    # mkDefault: a host can still set its own devbox-ctl or image.
    assert wrapper["package"] == {"_type": "override", "priority": 1000}
    assert wrapper["image"] == {"_type": "override", "priority": 1000}


def test_the_wrapper_gives_every_linux_host_its_own_image() -> None:
    for system, image in flake_shape()["wrapperImage"].items():
        assert image == {"_type": "override", "priority": 1000, "isThisSystemsImage": True}, system


def test_the_fleet_functions() -> None:
    # What a fleet's flake calls (docs/fleet.md); test_fleet_module.py evaluates them.
    assert flake_shape()["lib"] == {"fleetHive": "lambda", "fleetModules": "lambda"}


def test_the_orchestrator_module_may_be_imported_twice() -> None:
    """A configuration that names the wrapper twice (itself and nixosModules.default, or
    itself beside lib.fleetModules) gets it once: services.devbox.package is defined once."""
    counts = evaluate(REPO / "tests" / "nix" / "eval-double-import.nix")
    assert counts == {"once": 1, "twice": 1, "withDefault": 1}


def project_files() -> list[str]:
    """The files a flake of this tree holds: git's in a checkout; in the flake's own build
    (no .git), its source is already the flake's selection, so all of it."""
    if not (REPO / ".git").exists():
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    git = require_tool("git", shutil.which("git"))
    listed = subprocess.run(
        [git, "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    return list(filter(None, listed.split("\0")))


def test_the_formatting_check_formats_only_the_projects_files(tmp_path: Path) -> None:
    """A `path:` flake reference brings untracked files: the Python environment, the tools
    the quick start fetches and what a build leaves are not given to the formatters."""
    tree = tmp_path / "tree"
    for name in project_files():
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, tree / name)
    ignored = [
        ".venv/lib/python3.11/site-packages/x.py",
        ".tools/nix/bin/y.sh",
        "generator/build/lib/devbox/z.py",
        ".mypy_cache/w.py",
    ]
    for name in ignored:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("not the project's\n")
    store = tmp_path / "store"
    result = subprocess.run(
        [
            nix_with_fileset(),
            "--store",
            str(store),
            "--read-write-mode",
            "--eval",
            "--strict",
            "--json",
            str(REPO / "tests/nix/eval-formatted-source.nix"),
            "--arg",
            "lib",
            f"import {nixpkgs_lib()}",
            "--arg",
            "flakeDir",
            str(tree),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    # The store directory is /nix/store, or NIX_STORE_DIR's (the flake's own build sets it);
    # the --store directory holds the files under nix/store either way.
    (source,) = re.findall(r"cd /\S+/([a-z0-9]{32}-source)\b", json.loads(result.stdout))
    copied = store / "nix" / "store" / source
    files = {str(p.relative_to(copied)) for p in copied.rglob("*") if p.is_file()}
    assert "flake.nix" in files
    assert "scripts/check-formatting.sh" in files
    assert "generator/src/devbox/cli/__init__.py" in files
    assert not files & set(ignored)
