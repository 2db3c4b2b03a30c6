"""The module's image loader (nixos/orchestrator.nix's loadImage, or nixos/scripts/load-image.sh
once it is a file of its own) against real podman, in storage of the test's own.

podman 4 and 5 print "Loaded image: REF" for the one image of an archive; the loader must
take REF from that line and tag it with the name the units run. Found by the host test: the
loader's pattern matched only the older "Loaded image(s): REF", so no image was ever tagged
and no container could start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run  # noqa: E402 - the host test's runner takes the loader from the module

from host import podman_environment  # noqa: E402
from support import require_tool  # noqa: E402


def test_the_loader_tags_the_image_podman_loaded(tmp_path: Path) -> None:
    podman = require_tool("podman", shutil.which("podman"))
    busybox = require_tool(
        "busybox (busybox-static)",
        shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None),
    )
    env = {**os.environ, **podman_environment(tmp_path), "HOME": str(tmp_path / "home")}
    root = tmp_path / "rootfs" / "bin"
    root.mkdir(parents=True)
    shutil.copy(busybox, root / "busybox")
    archive = subprocess.run(
        ["tar", "-C", str(root.parent), "-c", "."], capture_output=True, check=True
    ).stdout
    subprocess.run(
        [podman, "import", "-", "localhost/devbox/flake-name:built"],
        input=archive,
        env=env,
        capture_output=True,
        check=True,
    )
    saved = tmp_path / "image.tar"
    subprocess.run(
        [podman, "save", "-o", str(saved), "localhost/devbox/flake-name:built"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([podman, "rmi", "-a", "-f"], env=env, check=True, capture_output=True)
    script = tmp_path / "load-image.sh"
    script.write_text(run.load_image_script())
    reference = "localhost/devbox/devcontainer:latest"
    loaded = subprocess.run(
        ["bash", "-o", "errexit", "-o", "nounset", "-o", "pipefail", str(script), str(saved),
         reference],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    inspected = subprocess.run(
        [podman, "image", "inspect", "--format", "{{.Id}}", reference],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert inspected.returncode == 0, f"{reference} is not there: {inspected.stderr}"
    again = subprocess.run(
        ["bash", str(script), str(saved), reference],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "already loaded" in again.stdout
