"""The dev-container image of the host test, as a `podman load` archive (docker-archive).

Stands in for the flake's `dockerTools.buildLayeredImage` (no Nix build is possible here):
layer 1 is the root file system assembled from Debian packages when the guest was built
(guest/image-rootfs.py); layer 2 holds the real entrypoint (containers/devcontainer/
entrypoint.sh) and nix.conf, the devbox package (for `devbox-ctl monitor`) and the stand-ins
for tailscale, tailscaled and code-server, which Debian does not package. The image
configuration is default.nix's: tini as PID 1 running the entrypoint, user 1000:1000, home
/home/dev, ~/.nix-profile/bin on PATH.

usage: make-image.py ROOTFS_TAR FILES_DIR DEVBOX_SRC OUT_ARCHIVE
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

TAG = "devbox/devcontainer:latest"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def top_layer(files: Path, devbox_src: Path, out: Path) -> None:
    def root(entry: tarfile.TarInfo) -> tarfile.TarInfo:
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        if "__pycache__" in entry.name:
            return None  # type: ignore[return-value]
        return entry

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
        entry = tarfile.TarInfo("usr/local/bin/devbox-ctl")
        entry.size, entry.mode = len(launcher), 0o755
        tar.addfile(entry, io.BytesIO(launcher))


def main() -> None:
    rootfs, files, devbox_src, out = (Path(a) for a in sys.argv[1:5])
    work = out.parent / (out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    top = work / "top.tar"
    top_layer(files, devbox_src, top)
    layers = [(rootfs, sha256(rootfs)), (top, sha256(top))]
    config = {
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
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{h}" for _, h in layers]},
        "history": [{"created_by": "tests/system/guest/make-image.py"} for _ in layers],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [
        {
            "Config": config_name,
            "RepoTags": [TAG],
            "Layers": [f"{h}/layer.tar" for _, h in layers],
        }
    ]
    partial = out.with_name(out.name + ".tmp")
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as archive:
        for path, digest in layers:
            archive.add(path, f"{digest}/layer.tar")
        for name, data in (
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    partial.rename(out)
    top.unlink()
    work.rmdir()
    print(f"image archive {out}: {out.stat().st_size >> 20} MiB")


if __name__ == "__main__":
    main()
