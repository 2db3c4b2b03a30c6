"""The dev-container image's root file system, assembled from the guest's Debian packages.

Runs in the chroot while the cached base image is built (guest/setup-base.sh). It takes the
packages the image needs (docs/image.md's base and services, as far as Debian packages them)
and everything they depend on, and writes their files into one tar, with /etc/passwd and
/etc/group for the user dev (uid 1000) as dockerTools.fakeNss gives. tailscale/tailscaled and
code-server are not Debian packages: the test adds stand-ins for them at test time
(guest/make-image.py), together with the real entrypoint and the devbox source.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from pathlib import Path

WANTED = [
    "tini",
    "bash",
    "coreutils",
    "findutils",
    "grep",
    "sed",
    "gawk",
    "tar",
    "gzip",
    "procps",
    "jq",
    "curl",
    "ca-certificates",
    "syncthing",
    "python3",
    "python3-click",
    "python3-pydantic",
    "python3-jinja2",
    "python3-deepdiff",
    "base-files",
    "debianutils",
    # Nix's client (the real image's `nix`), which builds through the host's daemon; its
    # bash-static comes with it. busybox's chmod is what the test's builds use (no nixpkgs).
    "nix-bin",
    "busybox-static",
    # direnv: the real image has nix-direnv's `use flake`; Debian has no nix-direnv, and direnv's
    # own stdlib `use flake` (nix print-dev-env) is what step 9c runs.
    "direnv",
]
# Dependencies the image does without: nix-bin's perl ones (for Debian's Perl bindings; the
# client itself is C++, and the real image's nix has no Perl) and bash-static's passwd (for its
# maintainer script, which an image never runs).
LEFT_OUT = {"perl", "libdbd-sqlite3-perl", "libwww-curl-perl", "passwd"}
ALIASES = ("bin", "sbin", "lib", "lib64")
# Entries this script writes itself; the packages' entries of the same name are left out, as
# a second entry of one name is refused by podman.
OWN = {
    *ALIASES,
    "tmp",
    "var/tmp",
    "run",
    "run/secrets",
    "run/tailscale",
    "home/dev",
    "etc/passwd",
    "etc/group",
    "etc/nsswitch.conf",
}
SKIP_PREFIXES = (
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/lintian",
    "/usr/share/bug",
)


def status() -> dict[str, list[str]]:
    """Installed package → the packages it depends on (alternatives: the installed one)."""
    text = Path("/var/lib/dpkg/status").read_text(encoding="utf-8")
    installed: dict[str, str] = {}
    provides: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", block, re.MULTILINE))
        if "install ok installed" not in fields.get("Status", ""):
            continue
        name = fields["Package"]
        installed[name] = ", ".join(
            filter(None, [fields.get("Pre-Depends", ""), fields.get("Depends", "")])
        )
        for provided in fields.get("Provides", "").split(","):
            if provided.strip():
                provides[provided.split("(")[0].strip()] = name
    graph: dict[str, list[str]] = {}
    for name, depends in installed.items():
        needed = []
        for clause in filter(None, (c.strip() for c in depends.split(","))):
            for alternative in clause.split("|"):
                dep = alternative.split("(")[0].split(":")[0].strip()
                dep = dep if dep in installed else provides.get(dep, "")
                if dep:
                    needed.append(dep)
                    break
        graph[name] = needed
    return graph


def closure(graph: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(WANTED)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph or name in LEFT_OUT:
            continue
        seen.add(name)
        todo.extend(graph[name])
    return seen


def files(packages: set[str]) -> list[str]:
    found: set[str] = set()
    info = Path("/var/lib/dpkg/info")
    for package in packages:
        for candidate in (info / f"{package}.list", info / f"{package}:amd64.list"):
            if candidate.exists():
                found.update(candidate.read_text(encoding="utf-8").splitlines())
    # Merged /usr: /bin, /sbin, /lib and /lib64 are links into /usr, and some packages still
    # list their files under the old names; one name per file (podman refuses duplicates).
    canonical = set()
    for listed in found:
        first, _, rest = listed.lstrip("/").partition("/")
        if first in ALIASES:
            canonical.add(f"/usr/{first}/{rest}" if rest else f"/usr/{first}")
        else:
            canonical.add(listed)
    kept = (p for p in canonical if p not in ("", "/", "/.") and not p.startswith(SKIP_PREFIXES))
    return sorted(kept)


def add_text(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode = len(data), mode
    tar.addfile(entry, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str, mode: int, uid: int = 0) -> None:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.uid, entry.gid = tarfile.DIRTYPE, mode, uid, uid
    tar.addfile(entry)


def main() -> None:
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    packages = closure(status())
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for link in ("bin", "sbin", "lib", "lib64"):
            entry = tarfile.TarInfo(link)
            entry.type, entry.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(entry)
        for path in files(packages):
            if path.lstrip("/") in OWN or not os.path.lexists(path):
                continue
            tar.add(
                path,
                arcname=path.lstrip("/"),
                recursive=False,
                filter=lambda e: (setattr(e, "uid", 0), setattr(e, "gid", 0), e)[2],
            )
        for name, mode in (
            ("tmp", 0o1777),
            ("var/tmp", 0o1777),
            ("run", 0o755),
            ("run/secrets", 0o755),
        ):
            add_dir(tar, name, mode)
        add_dir(tar, "home/dev", 0o755, uid=1000)
        add_dir(tar, "run/tailscale", 0o755, uid=1000)  # /var/run is a link to /run
        add_text(
            tar,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n"
            "dev:x:1000:1000:dev:/home/dev:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        add_text(tar, "etc/group", "root:x:0:\ndev:x:1000:\nnogroup:x:65534:\n")
        add_text(tar, "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    print(f"image root file system: {len(packages)} packages, {out.stat().st_size >> 20} MiB")


if __name__ == "__main__":
    main()
