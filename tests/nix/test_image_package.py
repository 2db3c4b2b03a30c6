"""The dev-container image's package (containers/devcontainer/default.nix), evaluated.

No image can be built here: eval-image.nix evaluates the package with nixpkgs' lib and
stand-ins for its packages and build helpers, and returns what it gives
dockerTools.buildLayeredImage. The scripts it runs are files, run here for real:
customise-root.sh (fakeRootCommands) in a folder standing for the layer's root.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nix_eval import evaluate

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-image.nix"
IMAGE = REPO / "containers" / "devcontainer"


def image(with_git: bool = True) -> dict[str, Any]:
    value: dict[str, Any] = evaluate(EVAL, withGit="true" if with_git else "false")
    return value


def test_the_image_runs_the_entrypoint_under_tini_as_dev() -> None:
    config = image()["config"]
    assert config["Entrypoint"][1] == "--"
    assert config["Entrypoint"][0].endswith("-tini/bin/tini")
    assert config["Entrypoint"][2].endswith("-devbox-entrypoint/bin/devbox-entrypoint")
    assert config["User"] == "1000:1000"
    assert config["Volumes"] == {"/home/dev": {}}


def test_the_image_has_the_client_of_the_hosts_nix_daemon() -> None:
    value = image()
    # docs/nix-in-containers.md: nix in every container, its profile's programs on PATH.
    assert "nix" in value["contents"]
    env = dict(item.split("=", 1) for item in value["config"]["Env"])
    assert env["PATH"] == "/home/dev/.local/bin:/home/dev/.nix-profile/bin:/bin"


def test_the_image_names_every_store_path_the_host_must_keep() -> None:
    # The containers see the host's /nix/store (nixDaemon): what the image's config and files
    # refer to must stay in it, so the module roots storeContents (system.extraDependencies).
    value = image()
    store = set(value["storeContents"])
    assert set(value["contents"]) <= store
    assert {"zed-remote-server", "glibc-locales-2", "tzdata", "tini", "nix"} <= store
    env = dict(item.split("=", 1) for item in value["config"]["Env"])
    referred = [env["LOCALE_ARCHIVE"], env["TZDIR"], env["DEVBOX_ZED_SERVER_DIR"]]
    referred += value["config"]["Entrypoint"][0::2]
    for path in referred:
        name = path.split("/")[3].split("-", 1)[1]
        assert name in store, path


def test_the_image_loaded_beside_the_hosts_store_is_the_same_image_without_store_paths() -> None:
    # docs/image.md, "Where the image is stored": each owner loads hostStoreImage, whose
    # customisation layer links into the store paths the module keeps on the host.
    assert image()["hostStoreImage"] == {"includeStorePaths": False, "sameArguments": True}


def test_the_entrypoint_is_the_script_file() -> None:
    entrypoint = image()["entrypoint"]
    text = (IMAGE / "entrypoint.sh").read_text()
    assert entrypoint["text"] == text.removeprefix("#!/usr/bin/env bash\n")
    assert {"jq", "tailscale", "code-server", "syncthing", "devbox-ctl"} <= set(
        entrypoint["runtimeInputs"]
    )


def test_two_locales_and_the_same_archive_in_the_profile() -> None:
    value = image()
    env = dict(item.split("=", 1) for item in value["config"]["Env"])
    assert re.fullmatch(r".*-glibc-locales-2/lib/locale/locale-archive", env["LOCALE_ARCHIVE"])
    assert value["profileVariables"]["localeArchive"] == env["LOCALE_ARCHIVE"]
    assert value["profileVariables"]["sessionVariables"] == "export EDITOR=nvim"
    assert "glibc-locales-all" not in str(value)


def test_etc_holds_profile_bashrc_and_the_git_configuration() -> None:
    etc = {entry["name"]: entry for entry in image()["etc"]}
    assert sorted(etc) == ["etc/bashrc", "etc/gitconfig", "etc/nix/nix.conf", "etc/profile"]
    assert etc["etc/bashrc"]["path"] == str(IMAGE / "bashrc.sh")
    # The client of the host's daemon reads flakes (docs/nix-in-containers.md).
    assert etc["etc/nix/nix.conf"]["path"] == str(IMAGE / "nix.conf")
    assert "experimental-features = nix-command flakes" in (IMAGE / "nix.conf").read_text()
    assert 'excludesFile = "/hm/git/ignore"' in etc["etc/gitconfig"]["text"]
    assert 'path = "/hm/git/config"' in etc["etc/gitconfig"]["text"]
    without = {entry["name"] for entry in image(with_git=False)["etc"]}
    assert without == {"etc/bashrc", "etc/nix/nix.conf", "etc/profile"}


def test_the_customisation_layer_gets_its_modes_and_owners(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to uid 1000 needs root (the build has fakeroot)")
    command = shlex.split(image()["fakeRootCommands"])
    assert command[0] == "bash"
    assert command[1].endswith("-customise-root.sh")
    assert command[2:] == ["1000", "1000", "/home/dev"]
    root = tmp_path / "layer"
    root.mkdir()
    result = subprocess.run(
        ["bash", str(IMAGE / "customise-root.sh"), *command[2:]],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for folder in ("tmp", "var/tmp"):
        assert stat.S_IMODE((root / folder).stat().st_mode) == 0o1777
    for folder in ("home/dev", "var/run/tailscale"):
        info = (root / folder).stat()
        assert (info.st_uid, info.st_gid) == (1000, 1000)
