"""The image's /etc/gitconfig gives git the git module's settings and its ignore list.

gitconfig.nix is evaluated with nixpkgs' lib, pointed at a configuration and an ignore list
such as Home Manager writes for home/modules/git.nix, and the result is given to real git as
its system configuration (GIT_CONFIG_SYSTEM), in a home without configuration of its own, as
in a fresh container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nix_eval import evaluate_expression
from support import require_tool

REPO = Path(__file__).resolve().parents[2]
GITCONFIG = REPO / "containers" / "devcontainer" / "gitconfig.nix"
# What Home Manager writes for home/modules/git.nix: git/config from programs.git.settings,
# git/ignore from programs.git.ignores (one pattern a line).
MODULE_CONFIG = "[pull]\n\trebase = true\n[init]\n\tdefaultBranch = main\n"
MODULE_IGNORES = ".direnv/\n.envrc.local\nresult\nresult-*\n"

Git = Callable[..., subprocess.CompletedProcess[str]]


def system_config(tmp_path: Path, config: str | None, ignore: str | None) -> Path:
    files = {}
    for name, text in (("config", config), ("ignore", ignore)):
        if text is not None:
            (tmp_path / f"hm-{name}").write_text(text)
            files[name] = f'"{tmp_path}/hm-{name}"'
    text = evaluate_expression(
        f"import {GITCONFIG} {{ inherit lib; gitConfig = {files.get('config', 'null')}; "
        f"gitIgnore = {files.get('ignore', 'null')}; }}"
    )
    path = tmp_path / "gitconfig"
    path.write_text(text)
    return path


@pytest.fixture
def git_in(tmp_path: Path) -> tuple[Git, Path]:
    git = require_tool("git", shutil.which("git"))
    home = tmp_path / "home"
    repo = home / "project"
    repo.mkdir(parents=True)

    def run(system: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "GIT_CONFIG_SYSTEM": str(system),
        }
        return subprocess.run(
            [git, "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
        )

    assert run(Path("/dev/null"), "init", "-q").returncode == 0
    return run, home


def test_the_module_ignores_reach_git(tmp_path: Path, git_in: tuple[Git, Path]) -> None:
    run, _home = git_in
    system = system_config(tmp_path, MODULE_CONFIG, MODULE_IGNORES)
    ignored = run(system, "check-ignore", "result", "result-2", ".direnv/x", "src/main.py")
    assert ignored.stdout.split() == ["result", "result-2", ".direnv/x"]
    assert run(system, "config", "--get", "pull.rebase").stdout.strip() == "true"


def test_the_module_config_alone_ignores_nothing(tmp_path: Path, git_in: tuple[Git, Path]) -> None:
    # What the image had before: only git/config as /etc/gitconfig; the ignore list never
    # reached git, whose default excludes file is in the (empty) home.
    run, _home = git_in
    before = tmp_path / "before"
    before.write_text(MODULE_CONFIG)
    assert run(before, "check-ignore", "result").returncode == 1


def test_the_users_own_gitconfig_wins(tmp_path: Path, git_in: tuple[Git, Path]) -> None:
    run, home = git_in
    system = system_config(tmp_path, MODULE_CONFIG, MODULE_IGNORES)
    (home / "my-ignores").write_text("*.log\n")
    (home / ".gitconfig").write_text(
        f"[core]\n\texcludesFile = {home}/my-ignores\n[pull]\n\trebase = false\n"
    )
    assert run(system, "check-ignore", "x.log").stdout.split() == ["x.log"]
    assert run(system, "config", "--get", "pull.rebase").stdout.strip() == "false"


def test_without_a_git_module_there_is_no_configuration() -> None:
    assert (
        evaluate_expression(
            f"import {GITCONFIG} {{ inherit lib; gitConfig = null; gitIgnore = null; }}"
        )
        == ""
    )
