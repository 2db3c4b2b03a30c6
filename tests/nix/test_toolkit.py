"""What the image takes from the Home Manager modules (containers/devcontainer/toolkit.nix).

eval-toolkit.nix evaluates toolkit.nix with a stand-in for home-manager's
homeManagerConfiguration: the option stubs and the behaviour of the Home Manager modules the
image reads (home-manager-behaviour-stubs.nix, as at the pin). The image's profile copies the
session variables; its /etc/gitconfig (gitconfig.nix) gets the git files, checked here with
real git.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from nix_eval import evaluate, evaluate_expression
from support import require_tool

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-toolkit.nix"
GITCONFIG = REPO / "containers" / "devcontainer" / "gitconfig.nix"


def toolkit() -> dict[str, Any]:
    value: dict[str, Any] = evaluate(EVAL)
    return value


def test_the_locale_archive_of_the_session_is_the_images_two_locales() -> None:
    # Home Manager's i18n sets LOCALE_ARCHIVE_2_27; with its default (the full glibcLocales)
    # /etc/profile would name, and the image carry, every locale.
    value = toolkit()
    assert value["sessionVariables"]["LOCALE_ARCHIVE_2_27"] == (
        value["imageLocales"] + "/lib/locale/locale-archive"
    )
    assert "glibc-locales-all" not in str(value)


def test_the_git_module_ignores_reach_git_in_the_image(tmp_path: Path) -> None:
    git = require_tool("git", shutil.which("git"))
    value = toolkit()
    (tmp_path / "config").write_text(value["gitConfig"])
    (tmp_path / "ignore").write_text(value["gitIgnore"])
    system = tmp_path / "gitconfig"
    system.write_text(
        evaluate_expression(
            f'import {GITCONFIG} {{ inherit lib; gitConfig = "{tmp_path}/config"; '
            f'gitIgnore = "{tmp_path}/ignore"; }}'
        )
    )
    repo = tmp_path / "home" / "project"
    repo.mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "GIT_CONFIG_SYSTEM": str(system),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [git, "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
        )

    assert run("init", "-q").returncode == 0
    assert run("check-ignore", "result", ".direnv/x", "main.py").stdout.split() == [
        "result",
        ".direnv/x",
    ]
    assert run("config", "--get", "merge.conflictStyle").stdout.strip() == "zdiff3"
