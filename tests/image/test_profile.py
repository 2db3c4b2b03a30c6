"""/etc/profile and /etc/bashrc of the image, sourced by real shells.

default.nix fills profile.sh's placeholders with replaceVars, which fails the
build on any @name@ it does not know; the test fills them the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IMAGE_DIR = Path(__file__).resolve().parents[2] / "containers" / "devcontainer"
PLACEHOLDERS = {
    "localeArchive": "/nix/store/0000-glibc-locales/lib/locale/locale-archive",
    "tzdir": "/nix/store/0000-tzdata/share/zoneinfo",
    "sessionVariables": "export EDITOR='nvim'\nexport VISUAL='nvim'",
}


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    text = (IMAGE_DIR / "profile.sh").read_text()
    assert set(re.findall(r"@([A-Za-z]+)@", text)) == set(PLACEHOLDERS)
    for name, value in PLACEHOLDERS.items():
        text = text.replace(f"@{name}@", value)
    (tmp_path / "profile").write_text(text)
    bashrc = (
        (IMAGE_DIR / "bashrc.sh").read_text().replace("/etc/profile", str(tmp_path / "profile"))
    )
    (tmp_path / "bashrc").write_text(bashrc)
    profile = (tmp_path / "profile").read_text().replace("/etc/bashrc", str(tmp_path / "bashrc"))
    (tmp_path / "profile").write_text(profile)
    return tmp_path


# The environment a shell ends with, printed by this interpreter (named by its path): the
# profile sets PATH to the image's /bin, which holds no `env` here (nor anything but sh in a
# Nix build).
PRINT_ENVIRONMENT = (
    f"exec {sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
)


def shell_env(argv: list[str]) -> dict[str, str]:
    result = subprocess.run(
        argv,
        env={"HOME": "/home/dev", "PATH": os.environ.get("PATH", os.defpath), "TERM": "dumb"},
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    environment: dict[str, str] = json.loads(result.stdout.splitlines()[-1])
    return environment


def test_a_login_shell_gets_the_whole_environment(etc: Path) -> None:
    sh = shutil.which("sh") or "/bin/sh"
    env = shell_env([sh, "-c", f". {etc / 'profile'}; {PRINT_ENVIRONMENT}"])
    assert env["PATH"] == "/home/dev/.local/bin:/home/dev/.nix-profile/bin:/bin"
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-bundle.crt"
    assert env["NIX_SSL_CERT_FILE"] == "/etc/ssl/certs/ca-bundle.crt"
    assert env["LOCALE_ARCHIVE"] == PLACEHOLDERS["localeArchive"]
    assert env["TZDIR"] == PLACEHOLDERS["tzdir"]
    assert env["LANG"] == "C.UTF-8"
    assert env["EDITOR"] == "nvim"


def test_an_interactive_shell_reads_the_profile_once(etc: Path) -> None:
    bash = shutil.which("bash") or "/bin/bash"
    counter = etc / "count"
    (etc / "profile").write_text((etc / "profile").read_text() + f"\necho x >> {counter}\n")
    env = shell_env(
        [bash, "--noprofile", "--rcfile", str(etc / "bashrc"), "-i", "-c", PRINT_ENVIRONMENT]
    )
    assert env["LOCALE_ARCHIVE"] == PLACEHOLDERS["localeArchive"]
    assert counter.read_text() == "x\n"
