"""nixos/scripts/load-image.sh against real podman: the image reaches the owner's storage.

The devbox-image-<user> unit runs it as the owner with HOME and XDG_RUNTIME_DIR set and the
image archive and the units' image name as arguments; so does this test, with real podman
(rootful, in storage of the test's own) and real image archives made from busybox. Which
form `podman load` prints was read in podman's source: cmd/podman/images/load.go prints
`Loaded image: NAME`, one line per name, in podman 4.3.1 (Debian 12's, run here) and in
podman 5 (containers/podman 090304a0, the podman 5 series the pinned nixpkgs packages; see
docs/nix-checked.md): the same form, so real podman here checks the parser the host runs.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from host import podman_environment
from module_programs import SCRIPTS, Program, declared, program
from support import require_tool

REFERENCE = "localhost/devbox/devcontainer:latest"


@dataclass
class Owner:
    """The owner's environment as the unit sets it, and podman in the test's storage."""

    env: dict[str, str]
    load: Program
    folder: Path

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args],
            env=self.env | {"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )

    def image_id(self, reference: str) -> str:
        result = self.podman("image", "inspect", "--format", "{{.Id}}", reference)
        return result.stdout.strip() if result.returncode == 0 else ""

    def archive(self, name: str, *tags: str, marker: str) -> Path:
        """An image archive as dockerTools writes one (docker-archive), from busybox."""
        root = self.folder / f"root-{name}"
        (root / "bin").mkdir(parents=True)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        (root / "marker").write_text(marker)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
        imported = subprocess.run(
            ["podman", "import", "-", tags[0]],
            input=tar.stdout,
            env=self.env,
            capture_output=True,
            check=False,
        )
        assert imported.returncode == 0, imported.stderr
        for tag in tags[1:]:
            assert self.podman("tag", tags[0], tag).returncode == 0
        path = self.folder / f"{name}.tar"
        saved = self.podman("save", "--format", "docker-archive", "-o", str(path), *tags)
        assert saved.returncode == 0, saved.stderr
        assert self.podman("rmi", *tags).returncode == 0
        return path

    def stamp(self) -> str:
        return (Path(self.env["HOME"]) / ".local/state/devbox/image").read_text()


@pytest.fixture
def owner(tmp_path: Path) -> Owner:
    require_tool("podman", shutil.which("podman"))
    require_tool("busybox (busybox-static)", shutil.which("busybox") or "/bin/busybox")
    home = tmp_path / "home"
    home.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = podman_environment(tmp_path) | {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    return Owner(env, program("loadImage", tmp_path), tmp_path)


def test_the_module_runs_the_script_file_with_podman_and_coreutils() -> None:
    spec = declared()["loadImage"]
    assert spec["name"] == "devbox-load-image"
    assert spec["text"] == (SCRIPTS / "load-image.sh").read_text()
    assert spec["runtimeInputs"] == ["podman", "coreutils"]


def test_an_archive_is_loaded_tagged_and_stamped(owner: Owner) -> None:
    archive = owner.archive("one", "localhost/devbox/build:one", marker="one")
    result = owner.load.run(str(archive), REFERENCE, env=owner.env)
    assert result.returncode == 0, result.stderr
    assert f"loading {archive} as {REFERENCE}" in result.stdout
    loaded = owner.image_id(REFERENCE)
    assert loaded
    assert owner.stamp() == f"{archive} {loaded}\n"
    # Loaded once: a second run (the next boot) keeps it.
    again = owner.load.run(str(archive), REFERENCE, env=owner.env)
    assert again.returncode == 0, again.stderr
    assert f"{REFERENCE} is already loaded from {archive}" in again.stdout
    assert owner.image_id(REFERENCE) == loaded


def test_a_streamed_archive_is_loaded(owner: Owner) -> None:
    # dockerTools.streamLayeredImage gives an executable that writes the archive to stdout.
    archive = owner.archive("one", "localhost/devbox/build:one", marker="one")
    stream = owner.folder / "stream-image"
    stream.write_text(f"#!/bin/sh\nexec /bin/cat {archive}\n")
    stream.chmod(0o755)
    result = owner.load.run(str(stream), REFERENCE, env=owner.env)
    assert result.returncode == 0, result.stderr
    assert owner.image_id(REFERENCE)


def test_an_archive_with_two_names_is_tagged_from_the_first(owner: Owner) -> None:
    archive = owner.archive(
        "two", "localhost/devbox/build:a", "localhost/devbox/build:b", marker="two"
    )
    loaded = owner.podman("load", "--quiet", "--input", str(archive))
    # What real podman prints for it: one line per name.
    assert loaded.stdout.splitlines() == [
        "Loaded image: localhost/devbox/build:a",
        "Loaded image: localhost/devbox/build:b",
    ] or loaded.stdout.splitlines() == [
        "Loaded image: localhost/devbox/build:b",
        "Loaded image: localhost/devbox/build:a",
    ]
    expected = owner.image_id("localhost/devbox/build:a")
    result = owner.load.run(str(archive), REFERENCE, env=owner.env)
    assert result.returncode == 0, result.stderr
    assert owner.image_id(REFERENCE) == expected


def test_a_new_image_replaces_the_old_one(owner: Owner) -> None:
    first = owner.archive("one", "localhost/devbox/build:one", marker="one")
    second = owner.archive("two", "localhost/devbox/build:two", marker="two")
    assert owner.load.run(str(first), REFERENCE, env=owner.env).returncode == 0
    old = owner.image_id(REFERENCE)
    result = owner.load.run(str(second), REFERENCE, env=owner.env)
    assert result.returncode == 0, result.stderr
    new = owner.image_id(REFERENCE)
    assert new
    assert new != old
    assert owner.stamp() == f"{second} {new}\n"
    # The replaced image's space is freed.
    assert owner.podman("image", "exists", old).returncode == 1


def test_a_deleted_image_is_loaded_again(owner: Owner) -> None:
    archive = owner.archive("one", "localhost/devbox/build:one", marker="one")
    assert owner.load.run(str(archive), REFERENCE, env=owner.env).returncode == 0
    assert owner.podman("rmi", "--force", REFERENCE).returncode == 0
    result = owner.load.run(str(archive), REFERENCE, env=owner.env)
    assert result.returncode == 0, result.stderr
    assert "loading" in result.stdout
    assert owner.image_id(REFERENCE)


def test_a_broken_archive_fails_and_changes_nothing(owner: Owner) -> None:
    broken = owner.folder / "broken.tar"
    broken.write_bytes(b"not an image archive\n")
    result = owner.load.run(str(broken), REFERENCE, env=owner.env)
    assert result.returncode != 0
    assert owner.image_id(REFERENCE) == ""
    assert not (Path(owner.env["HOME"]) / ".local/state/devbox/image").exists()


def test_wrong_arguments_are_a_usage_error(owner: Owner) -> None:
    result = owner.load.run("only-one", env=owner.env)
    assert result.returncode == 2
    assert "usage:" in result.stderr
