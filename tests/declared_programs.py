"""A PATH holding only the programs of the packages a Nix derivation declares.

A Nix build or a writeShellApplication gives its script exactly the `bin/` of the packages it
lists (runtimeInputs, nativeCheckInputs, stdenv's own tools). The tests here run those scripts
against the same programs from Debian, and only those: each nixpkgs attribute maps to the
Debian package that ships the same upstream program, and the PATH is a folder of links to that
package's executables (`dpkg -L`). A program the Nix side forgot to declare is then missing
here too, as it would be in the build sandbox or on the NixOS host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from support import require_tool

# nixpkgs attribute → the Debian package with the same upstream program.
DEBIAN_PACKAGE = {
    "bash": "bash",
    "bzip2": "bzip2",
    "coreutils": "coreutils",
    "diffutils": "diffutils",
    "file": "file",
    "findutils": "findutils",
    "gawk": "gawk",
    "git": "git",
    "gnugrep": "grep",
    "gnumake": "make",
    "gnused": "sed",
    "gnutar": "tar",
    "gzip": "gzip",
    "jq": "jq",
    "nix": "nix-bin",
    "patch": "patch",
    "podman": "podman",
    "shellcheck": "shellcheck",
    "util-linux": "util-linux",
    "xz": "xz-utils",
}

# What stdenv.mkDerivation puts on every build's PATH besides the declared inputs (nixpkgs
# pkgs/stdenv/generic/common-path.nix; docs/nix-checked.md).
STDENV = (
    "coreutils",
    "findutils",
    "diffutils",
    "gnused",
    "gnugrep",
    "gawk",
    "gnutar",
    "gzip",
    "bzip2",
    "gnumake",
    "bash",
    "patch",
    "xz",
    "file",
)

BIN_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/")

# Programs a nixpkgs package has that its Debian counterpart leaves to another package:
# nixpkgs' bash links bin/sh to bash (pkgs/shells/bash/5.nix, postInstall), Debian's sh is dash.
ALSO = {"bash": {"sh": "bash"}}


def executables(attribute: str) -> list[Path]:
    """The executables the Debian package standing for a nixpkgs attribute installs."""
    package = DEBIAN_PACKAGE.get(attribute)
    assert package, f"no Debian package stands for pkgs.{attribute}: add it to DEBIAN_PACKAGE"
    dpkg = require_tool("dpkg (Debian's package manager)", shutil.which("dpkg"))
    listed = subprocess.run([dpkg, "-L", package], capture_output=True, text=True, check=False)
    require_tool(f"{package} (for pkgs.{attribute})", "ok" if listed.returncode == 0 else None)
    found = []
    for line in listed.stdout.splitlines():
        path = Path(line)
        in_bin = line.startswith(BIN_DIRS) and path.parent.as_posix() + "/" in BIN_DIRS
        if in_bin and path.exists() and not path.is_dir() and os.access(path, os.X_OK):
            found.append(path)
    return found


def path_of(attributes: list[str] | tuple[str, ...], folder: Path) -> str:
    """A PATH (one folder of links) with exactly the programs of these nixpkgs attributes."""
    folder.mkdir(parents=True, exist_ok=True)
    for attribute in attributes:
        programs = executables(attribute)
        for program in programs:
            link = folder / program.name
            if not link.exists():
                link.symlink_to(program)
        for name, target in ALSO.get(attribute, {}).items():
            if not (folder / name).exists():
                (folder / name).symlink_to(next(p for p in programs if p.name == target))
    return str(folder)
