"""The Home Manager modules (home/modules), evaluated with nixpkgs' lib alone.

The modules run against stub declarations of the Home Manager options they set
(home-manager-option-stubs.nix, typed as in home-manager at the pin) and stand-in
packages named after their nixpkgs attributes (eval-home-modules.nix). That checks
what each module installs and configures, that the image's list (devbox.packages)
is the workstations' list (home.packages), and that every option follows the house
style. The real nixpkgs library comes from a checkout of nix-community/nixpkgs.lib
named by DEVBOX_NIXPKGS_LIB; without it the tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nix_eval import evaluate, instantiate

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-home-modules.nix"

CLI = [
    "bat",
    "curl",
    "eza",
    "fd",
    "file",
    "fzf",
    "htop",
    "jq",
    "less",
    "ncdu",
    "neovim",
    "ripgrep",
    "rsync",
    "tree",
    "unzip",
    "wget",
    "yq-go",
    "zellij",
    "zip",
]
DEV = [
    "direnv",
    "gnumake",
    "just",
    "nil",
    "nix-direnv",
    "nixfmt",
    "nodejs",
    "python3",
    "shellcheck",
]
GIT = ["git", "gh", "git-lfs"]


def evaluate_module(module: str, config: str = "{ }") -> dict[str, Any]:
    value: dict[str, Any] = evaluate(EVAL, module=json.dumps(module), config=config)
    return value


def test_the_devcontainer_profile_installs_the_whole_toolkit() -> None:
    result = evaluate_module("devcontainer")
    assert sorted(result["packages"]) == sorted(CLI + DEV + GIT)
    # One list: what the image takes (devbox.packages) is what a workstation installs.
    assert result["homePackages"] == result["packages"]
    assert result["sessionVariables"] == {"EDITOR": "nvim", "VISUAL": "nvim"}
    assert result["git"]["enable"] is True


@pytest.mark.parametrize(("module", "expected"), [("cli", CLI), ("dev", DEV), ("git", GIT)])
def test_each_module_installs_its_own_packages_only_when_enabled(
    module: str, expected: list[str]
) -> None:
    assert evaluate_module(module)["packages"] == []
    enabled = evaluate_module(module, f"{{ devbox.{module}.enable = true; }}")
    assert sorted(enabled["packages"]) == sorted(expected)


def test_extra_packages_join_the_same_list() -> None:
    result = evaluate_module(
        "devcontainer",
        "{ pkgs, ... }: { devbox.cli.extraPackages = [ pkgs.httpie ]; }",
    )
    assert "httpie" in result["packages"]
    assert "httpie" in result["homePackages"]


def test_a_profile_part_can_be_switched_off() -> None:
    result = evaluate_module("devcontainer", "{ devbox.dev.enable = false; }")
    assert sorted(result["packages"]) == sorted(CLI + GIT)


def test_git_configuration() -> None:
    git = evaluate_module("git", "{ devbox.git.enable = true; }")["git"]
    # The package comes through devbox.packages, so Home Manager must not add a second one.
    assert git["package"] is None
    assert git["lfs"] == {"enable": True, "package": None}
    settings = git["settings"]
    assert settings["init"]["defaultBranch"] == "main"
    assert settings["push"]["autoSetupRemote"] is True
    assert settings["credential"]["https://github.com"]["helper"] == "!gh auth git-credential"
    assert "user" not in settings
    assert "result" in git["ignores"]


def test_git_identity_and_branch_are_options() -> None:
    settings = evaluate_module(
        "git",
        '{ devbox.git = { enable = true; userName = "Ada Lovelace"; '
        'userEmail = "ada@example.com"; defaultBranch = "trunk"; }; }',
    )["git"]["settings"]
    assert settings["user"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
    assert settings["init"]["defaultBranch"] == "trunk"


def test_no_editor_leaves_the_session_variables_alone() -> None:
    result = evaluate_module("cli", "{ devbox.cli = { enable = true; editor = null; }; }")
    assert result["sessionVariables"] == {}


def test_every_option_is_typed_described_with_default_and_example() -> None:
    options = evaluate_module("devcontainer")["options"]
    assert set(options) == {
        "devbox.packages",
        "devbox.cli.enable",
        "devbox.cli.extraPackages",
        "devbox.cli.editor",
        "devbox.dev.enable",
        "devbox.dev.extraPackages",
        "devbox.git.enable",
        "devbox.git.package",
        "devbox.git.userName",
        "devbox.git.userEmail",
        "devbox.git.defaultBranch",
    }
    for name, option in options.items():
        assert option["type"], name
        assert option["hasDescription"], name
        assert option["hasDefault"], name
        assert option["hasExample"], name


def test_a_package_outside_nixpkgs_names_fails_to_evaluate() -> None:
    # The stand-in package set is closed: a misspelt attribute is an error, not a silent skip.
    result = instantiate(
        EVAL,
        module='"cli"',
        config="{ pkgs, ... }: { devbox.cli = { enable = true; extraPackages = [ pkgs.ripgrepp ]; }; }",
    )
    assert result.returncode != 0
    assert "ripgrepp" in result.stderr
