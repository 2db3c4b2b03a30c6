"""The dev-container image of the host test, as a `podman load` archive (docker-archive).

Stands in for the flake's `dockerTools.buildLayeredImage` (no Nix build is possible here). The
image's files: the root file system assembled from Debian packages when the guest was built
(guest/image-rootfs.py), and on top of it the real entrypoint (containers/devcontainer/
entrypoint.sh) and nix.conf, the devbox package (for `devbox-ctl monitor`), the stand-ins for
tailscale, tailscaled and code-server, which Debian does not package, and
/etc/devbox-image-revision (the REVISION argument, so that a test can tell two images apart).
The image configuration is default.nix's: tini as PID 1 running the entrypoint, user
1000:1000, home /home/dev, ~/.nix-profile/bin on PATH.

Two forms, as the flake builds two (containers/devcontainer/default.nix):

- the whole image (`.#devcontainer`): two layers, the root file system and the files above;
- with --host-store ROOT, the image each owner loads when the containers mount the host's
  /nix/store (users.nix nixDaemon, docs/image.md "Where the image is stored"): the image's
  files are written to ROOT, a store path (the stand-in of the image's storeContents, which
  the module keeps in the host's store), and the archive holds one small layer whose /usr is
  a link into ROOT (/bin, /sbin, /lib, /lib64 link into /usr as in the root file system), the
  other top-level directories real, their files links into ROOT, except /etc/passwd,
  /etc/group and /etc/nsswitch.conf, which are real files. That is the layout of
  `buildLayeredImage { includeStorePaths = false; }`: a customisation layer of links into the
  store, no store path in the image.

usage: make-image.py ROOTFS_TAR FILES_DIR DEVBOX_SRC OUT_ARCHIVE [REVISION] [--host-store ROOT]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

TAG = "devbox/devcontainer:latest"
# Files of the host-store image's /etc that are real files, not links into the store.
REAL_FILES = {"etc/passwd", "etc/group", "etc/nsswitch.conf"}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def top_layer(files: Path, devbox_src: Path, out: Path, revision: str = "1") -> None:
    def root(entry: tarfile.TarInfo) -> tarfile.TarInfo:
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        if "__pycache__" in entry.name:
            return None  # type: ignore[return-value]
        return entry

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
        entry = tarfile.TarInfo(name)
        entry.size, entry.mode = len(data), mode
        tar.addfile(entry, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(files / "entrypoint.sh", "usr/local/bin/devbox-entrypoint", filter=root)
        for name in ("tailscale", "tailscaled", "code-server"):
            tar.add(files / "image" / name, f"usr/local/bin/{name}", filter=root)
        tar.add(devbox_src, "usr/lib/python3/dist-packages/devbox", filter=root)
        # The real image's /etc/nix/nix.conf (containers/devcontainer/nix.conf).
        tar.add(files / "nix.conf", "etc/nix/nix.conf", filter=root)
        # /bin/sh is bash, as dockerTools.binSh gives the flake's image (docs/image.md).
        sh = tarfile.TarInfo("usr/bin/sh")
        sh.type, sh.linkname = tarfile.SYMTYPE, "bash"
        tar.addfile(sh)
        launcher = (
            b"#!/usr/bin/python3\nimport sys\nfrom devbox.cli import main\nsys.exit(main())\n"
        )
        add_bytes(tar, "usr/local/bin/devbox-ctl", launcher, 0o755)
        add_bytes(tar, "etc/devbox-image-revision", f"{revision}\n".encode(), 0o644)


def image_config(diff_ids: list[str], created_by: str) -> dict[str, object]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/tini", "--", "/usr/local/bin/devbox-entrypoint"],
            "User": "1000:1000",
            "WorkingDir": "/home/dev",
            "Volumes": {"/home/dev": {}},
            "Env": [
                "HOME=/home/dev",
                "USER=dev",
                "LOGNAME=dev",
                "SHELL=/bin/bash",
                "PATH=/home/dev/.local/bin:/home/dev/.nix-profile/bin:/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
            ],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{h}" for h in diff_ids]},
        "history": [{"created_by": created_by} for _ in diff_ids],
    }


def write_archive(layers: list[Path], tag: str, out: Path, created_by: str) -> None:
    """A docker-archive of these layers with the image configuration; written whole or not."""
    digests = [sha256(layer) for layer in layers]
    config_bytes = json.dumps(image_config(digests, created_by), sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [
        {"Config": config_name, "RepoTags": [tag], "Layers": [f"{h}/layer.tar" for h in digests]}
    ]
    partial = out.with_name(out.name + ".tmp")
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as archive:
        for layer, digest in zip(layers, digests, strict=True):
            archive.add(layer, f"{digest}/layer.tar")
        for name, data in (
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    partial.chmod(0o644)
    partial.rename(out)


def minimal_layer(root: Path, store_path: str, out: Path) -> dict[str, int]:
    """The host-store image's one layer: links into the store path, real directories."""
    counts = {"links": 0, "files": 0, "dirs": 0}

    def entry(name: str, source: Path) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        st = source.lstat()
        info.mode, info.uid, info.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        return info

    def link(tar: tarfile.TarFile, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
        counts["links"] += 1

    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for top in sorted(p.name for p in root.iterdir()):
            source = root / top
            if top == "usr":
                link(tar, "usr", f"{store_path}/usr")
            elif source.is_symlink():
                link(tar, top, str(source.readlink()))
            elif not source.is_dir():
                link(tar, top, f"{store_path}/{top}")
            else:
                for dirpath, dirnames, filenames in os.walk(source):
                    relative = os.path.relpath(dirpath, root)
                    info = entry(relative, Path(dirpath))
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    counts["dirs"] += 1
                    for name in sorted(dirnames + filenames):
                        path = Path(dirpath) / name
                        rel = f"{relative}/{name}"
                        if path.is_symlink():
                            link(tar, rel, str(path.readlink()))
                        elif path.is_dir():
                            continue
                        elif rel in REAL_FILES:
                            info = entry(rel, path)
                            info.size = path.stat().st_size
                            with path.open("rb") as f:
                                tar.addfile(info, f)
                            counts["files"] += 1
                        else:
                            link(tar, rel, f"{store_path}/{rel}")
    return counts


def unpack(tar: Path, into: Path) -> None:
    subprocess.run(
        ["tar", "-xpf", str(tar), "-C", str(into), "--numeric-owner"], check=True, timeout=1800
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rootfs", type=Path)
    parser.add_argument("files", type=Path)
    parser.add_argument("devbox_src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("revision", nargs="?", default="1")
    parser.add_argument("--host-store", type=Path, metavar="ROOT")
    args = parser.parse_args()
    out: Path = args.out
    work = out.parent / (out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    top = work / "top.tar"
    top_layer(args.files, args.devbox_src, top, args.revision)
    if args.host_store is None:
        write_archive([args.rootfs, top], TAG, out, "tests/system/guest/make-image.py")
    else:
        root: Path = args.host_store
        partial = root.with_name(root.name + ".tmp")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted run left
        partial.mkdir(parents=True)
        unpack(args.rootfs, partial)
        unpack(top, partial)
        partial.chmod(0o555)
        partial.rename(root)
        layer = work / "links.tar"
        counts = minimal_layer(root, str(root), layer)
        write_archive([layer], TAG, out, "tests/system/guest/make-image.py --host-store")
        layer.unlink()
        print(f"image files in {root}; the layer of links: {counts}")
    top.unlink()
    work.rmdir()
    print(f"image archive {out}: {out.stat().st_size >> 10} KiB")


if __name__ == "__main__":
    main()
