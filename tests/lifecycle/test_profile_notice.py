"""The image's /etc/profile shows cleanup's login notice to interactive shells only."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from devbox.container import activity

PROFILE = Path(__file__).resolve().parents[2] / "containers" / "devcontainer" / "profile.sh"


def login(tmp_path: Path, *flags: str) -> str:
    text = re.sub(r"@[A-Za-z]+@", "", PROFILE.read_text()).replace("/etc/bashrc", "/nonexistent")
    # The image links every program into /bin; here the environment's PATH stands for it (a
    # Nix build has only sh in /bin, and no /usr/bin).
    image_bin = 'export PATH="$HOME/.local/bin:$HOME/.nix-profile/bin:/bin"'
    assert image_bin in text
    text = text.replace(image_bin, f"export PATH={shlex.quote(os.environ.get('PATH', os.defpath))}")
    (tmp_path / "profile").write_text(text)
    sh = shutil.which("sh") or "/bin/sh"
    return subprocess.run(
        [sh, *flags, "-c", f". {tmp_path / 'profile'}"],
        env={"HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", os.defpath)},
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout


def test_an_interactive_login_shows_the_notice_and_others_do_not(tmp_path: Path) -> None:
    assert login(tmp_path, "-i") == ""
    notice = tmp_path / "home" / activity.NOTICE
    notice.parent.mkdir(parents=True)
    notice.write_text("devbox will STOP the container web at 2026-11-03 09:00 UTC.\n")
    assert login(tmp_path, "-i") == notice.read_text()
    assert login(tmp_path) == ""
