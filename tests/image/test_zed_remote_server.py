"""The pinned Zed remote server lands under the name Zed clients of that version look for.

install-zed-remote-server.sh (zed-remote-server.nix's installPhase) runs here with real gzip
on a real gzip archive; zed-remote-server.nix is evaluated with nixpkgs' lib and stand-ins for
the build helpers, to check it hands the script the pinned version. A stable-channel client
of version V runs `zed-remote-server-stable-V+stable` (docs/nix-checked.md, "Zed").
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

from nix_eval import evaluate_expression

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "containers" / "devcontainer" / "install-zed-remote-server.sh"
PACKAGE = REPO / "containers" / "devcontainer" / "zed-remote-server.nix"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )


def test_the_server_is_installed_as_version_plus_stable(tmp_path: Path) -> None:
    archive = tmp_path / "zed-remote-server-linux-x86_64.gz"
    archive.write_bytes(gzip.compress(b"#!/bin/sh\necho 0.212.4\n"))
    result = install(str(archive), "0.212.4", str(tmp_path / "out" / "bin"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "bin").iterdir()) == [
        "zed-remote-server-stable-0.212.4+stable"
    ]
    server = tmp_path / "out" / "bin" / "zed-remote-server-stable-0.212.4+stable"
    assert server.read_bytes() == b"#!/bin/sh\necho 0.212.4\n"
    assert server.stat().st_mode & 0o777 == 0o755


def test_a_broken_archive_or_version_installs_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "broken.gz"
    archive.write_bytes(b"not gzip")
    assert install(str(archive), "0.212.4", str(tmp_path / "bin")).returncode != 0
    assert not any((tmp_path / "bin").glob("zed-remote-server-stable-*+stable"))
    bad = install(str(archive), "0.212", str(tmp_path / "bin2"))
    assert bad.returncode == 2
    assert "is not a Zed version" in bad.stderr


def test_the_package_gives_the_script_the_pinned_version() -> None:
    expression = f"""
      let
        stub = {{ type = "derivation"; name = "stub"; outPath = "/nix/store/0-stub"; }};
        package = pin: import {PACKAGE} {{
          inherit lib pin;
          stdenv = {{ mkDerivation = arguments: arguments; cc.cc = stub; }};
          fetchurl = arguments: arguments;
          autoPatchelfHook = stub;
          zed-editor.remote_server = "nixpkgs' remote_server";
        }};
        pinned = package {{ version = "0.212.4"; sha256 = "0000000000000000000000000000000000000000000000000000"; }};
      in {{
        inherit (pinned) installPhase;
        url = pinned.src.url;
        unpinned = package {{ version = null; sha256 = null; }};
      }}
    """
    value = evaluate_expression(expression)
    assert value["unpinned"] == "nixpkgs' remote_server"
    assert value["url"] == (
        "https://github.com/zed-industries/zed/releases/download/v0.212.4/"
        "zed-remote-server-linux-x86_64.gz"
    )
    phase = value["installPhase"]
    assert '-install-zed-remote-server.sh "$src" 0.212.4 "$out/bin"' in phase
    assert (
        json.loads((REPO / "containers/devcontainer/zed-remote-server.json").read_text())["version"]
        is None
    )
