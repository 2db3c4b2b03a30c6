"""The host test's image (tests/system/guest/make-image.py), made here and run with real podman.

The guest cannot build the flake's image, so make-image.py stands in for it, in both of the
image package's forms (containers/devcontainer/default.nix): the whole image, and with
--host-store the image each owner loads when the containers mount the host's /nix/store (the
image's files in one store path, the archive a layer of links into it). The host test rests on
that second form, so its layout is checked here on a small root file system of busybox: real
podman loads the archive and runs it with the store path mounted, as the units mount the
host's store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from host import podman_environment
from support import require_tool

REPO = Path(__file__).resolve().parents[2]
MAKE_IMAGE = REPO / "tests" / "system" / "guest" / "make-image.py"
FILES = REPO / "tests" / "system" / "guest"
TAG = "localhost/devbox/devcontainer:latest"


def rootfs(tmp_path: Path) -> Path:
    """A root file system shaped as image-rootfs.py's (merged /usr), of busybox (make-image.py
    links /usr/bin/sh to bash, as the image does)."""
    busybox = shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None)
    busybox = require_tool("busybox (busybox-static)", busybox)
    root = tmp_path / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "usr" / "bin" / "busybox")
    for applet in ("bash", "cat", "touch", "tini"):
        (root / "usr" / "bin" / applet).symlink_to("busybox")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\ndev:x:1000:\n")
    (root / "etc" / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
    (root / "etc" / "hostname").write_text("image\n")
    (root / "home" / "dev").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    return tar


def files(tmp_path: Path) -> Path:
    """The guest's files/ folder as run.py copies it: the entrypoint, nix.conf, the stand-ins."""
    folder = tmp_path / "files"
    (folder / "image").mkdir(parents=True)
    shutil.copy(REPO / "containers" / "devcontainer" / "entrypoint.sh", folder / "entrypoint.sh")
    shutil.copy(REPO / "containers" / "devcontainer" / "nix.conf", folder / "nix.conf")
    for name in ("tailscale", "tailscaled", "code-server"):
        shutil.copy(FILES / "image" / name, folder / "image" / name)
    return folder


def make(tmp_path: Path, revision: str, *extra: str) -> Path:
    out = tmp_path / f"image-{revision}.tar"
    result = subprocess.run(
        [
            *("python3", str(MAKE_IMAGE), str(rootfs(tmp_path)), str(files(tmp_path))),
            *(str(REPO / "generator" / "src" / "devbox"), str(out), revision, *extra),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def layers(archive: Path) -> tuple[dict[str, object], list[tarfile.TarInfo]]:
    """The archive's manifest entry and the entries of its last layer."""
    with tarfile.open(archive) as tar:
        manifest_file = tar.extractfile("manifest.json")
        assert manifest_file is not None
        (manifest,) = json.load(manifest_file)
        layer_file = tar.extractfile(manifest["Layers"][-1])
        assert layer_file is not None
        with tarfile.open(fileobj=layer_file) as layer:
            return manifest, layer.getmembers()


def test_the_host_store_image_is_a_layer_of_links_into_the_store_path(tmp_path: Path) -> None:
    store = tmp_path / "store" / "0123-devcontainer-root"
    archive = make(tmp_path, "2", "--host-store", str(store))
    manifest, entries = layers(archive)
    assert len(manifest["Layers"]) == 1  # type: ignore[arg-type]
    assert manifest["RepoTags"] == ["devbox/devcontainer:latest"]
    by_name = {entry.name: entry for entry in entries}
    assert by_name["usr"].linkname == f"{store}/usr"
    assert by_name["bin"].linkname == "usr/bin"
    assert by_name["usr"].issym()
    assert by_name["bin"].issym()
    assert by_name["etc/hostname"].linkname == f"{store}/etc/hostname"
    assert by_name["etc/devbox-image-revision"].linkname == f"{store}/etc/devbox-image-revision"
    for real in ("etc/passwd", "etc/group", "etc/nsswitch.conf"):
        assert by_name[real].isfile(), real
    assert by_name["home/dev"].isdir()
    # No file of the image is in the archive: every one is in the store path.
    assert not [e.name for e in entries if e.isfile() and not e.name.startswith("etc/")]
    assert (store / "etc" / "devbox-image-revision").read_text() == "2\n"
    assert (store / "usr" / "local" / "bin" / "devbox-entrypoint").is_file()
    assert (store / "usr" / "lib" / "python3" / "dist-packages" / "devbox" / "cli").is_dir()
    assert not store.with_name(store.name + ".tmp").exists()


def test_the_whole_image_has_the_root_file_system_and_the_files_above(tmp_path: Path) -> None:
    manifest, entries = layers(make(tmp_path, "1"))
    assert len(manifest["Layers"]) == 2  # type: ignore[arg-type]
    names = {entry.name for entry in entries}
    assert {"usr/local/bin/devbox-entrypoint", "etc/devbox-image-revision", "usr/bin/sh"} <= names


def test_podman_runs_the_host_store_image_from_the_mounted_store_path_only(
    tmp_path: Path,
) -> None:
    require_tool("podman", shutil.which("podman"))
    store = tmp_path / "store" / "0123-devcontainer-root"
    archive = make(tmp_path, "2", "--host-store", str(store))
    env = podman_environment(tmp_path)

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=env, capture_output=True, text=True, check=False, timeout=120
        )

    loaded = podman("load", "--input", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    # As root in the container: /usr is the read-only store path even to root; /etc/passwd is the
    # layer's own file.
    run = ("run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "/bin/sh")
    mounted = podman(
        *run,
        "--volume",
        f"{store}:{store}:ro",
        TAG,
        "-c",
        "cat /etc/devbox-image-revision; touch /usr/new 2>/dev/null && echo wrote-usr;"
        " touch /etc/passwd && echo wrote-passwd",
    )
    assert mounted.returncode == 0, mounted.stderr
    assert mounted.stdout.split() == ["2", "wrote-passwd"]
    # Without the store path, nothing of the image is there to run.
    bare = podman(*run, TAG, "-c", "true")
    assert bare.returncode != 0
