"""Three ways to store the dev-container image, measured in one boot of the Debian 13 guest.

Issue 22, part 2 ("the image stored once for all users"). Runs as root in the guest that
tests/system/bench_image.py boots (its test disk's guest/boot.sh is image_designs/boot.sh), on
the cached base of tests/system/build-base.sh. Every design gets four new users of its own
(useradd, sub-uid ranges, lingering, their systemd managers), so each user is a new user to
its design and the storage of one design never holds another's layers:

- today: the module's loader (nixos/scripts/load-image.sh, run as the module's
  devbox-image-<user> unit runs it: a system unit with User=, HOME and XDG_RUNTIME_DIR) loads
  the image archive into each user's rootless storage (native overlay);
- nixstore: the image's root file system is put into /nix/store once, as root (`nix-store
  --add`), and each user loads, with the same loader, a minimal image whose /usr is a link
  into that store path (/bin, /sbin, /lib, /lib64 are links into /usr as in the rootfs; /etc
  and the other top-level directories are real directories whose files link into the store,
  but /etc/passwd, /etc/group and /etc/nsswitch.conf, which are real files). Every container
  mounts /nix/store read-only anyway (devbox's units do, for the host's Nix daemon);
- addstore: root loads the archive once into a storage of its own (force_mask=shared), which
  every user's ~/.config/containers/storage.conf names in additionalimagestores, with
  fuse-overlayfs as the users' mount_program; a user loads nothing.

The three images hold the same files: the rootfs that image-rootfs.py made when the base was
built, make-image.py's top layer (the real entrypoint, devbox, the stand-ins) and compiled
bytecode for every Python module (`compileall --invalidation-mode unchecked-hash`, valid
whatever the files' times: the Nix store sets every mtime to 1, and nixpkgs' Python packages
carry their bytecode as well). "today"'s archive is make-image.py's output, run as the scenario
runs it, on that rootfs.

Measured: the time to make the image available to a new user (the part of the switch that adds
a user's first container which depends on the design) and to that user's running container;
du of each user's storage and of the shared part, for one and for four users; a container's
`podman start` (and until its monitor's first record), several times; commands that read the
image's files inside the container, several times; all as the users, in their systemd
managers, interleaved between the designs so that drift hits each alike.

Writes /mnt/test/results/image-designs.json after every phase.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEST = Path("/mnt/test")
RESULTS = TEST / "results" / "image-designs.json"
FILES = TEST / "files"
SRC = TEST / "src" / "devbox"
ROOTFS_TAR = Path("/var/lib/devbox-test/image-rootfs.tar")
PODMAN = Path("/nix/store/00000000000000000000000000000001-podman-5.4.2/bin/podman")
GIT = Path("/nix/store/00000000000000000000000000000002-git-2.47.3/bin/git")
LOADER = FILES / "load-image" / "load-image.sh"
WORK = Path("/var/lib/devbox-bench")
REFERENCE = "localhost/devbox/devcontainer:latest"
SHARED_STORE = Path("/var/lib/devbox-images")
SHARED_STORE_CONF = Path("/etc/devbox/image-store.conf")
DAEMON_SOCKET = Path("/nix/var/nix/daemon-socket")
WAIT = 900.0
NAMES = ("alice", "bob", "carol", "dave")
DESIGNS = {"today": 2001, "nixstore": 2011, "addstore": 2021}
PROBE_USER, PROBE_UID = "addstore-eve", 2031
# Commands that read the image's files, run in the container as its user (dev). git is not in
# the test image: the guest's git from /nix/store (mounted in every container) runs with the
# image's libraries (libc, pcre2, zlib).
READS = {
    "git --version": f"{GIT} --version",
    "python3 -c 'import pydantic, jinja2'": "python3 -c 'import pydantic, jinja2'",
    "find /usr/ -type f | wc -l": "find /usr/ -type f | wc -l",
    "tar -c /usr/lib/python3.13 | wc -c": "tar -C / -cf - usr/lib/python3.13 | wc -c",
}
# Runs "$@" and reports its own start, end and status on stderr: the time of a podman command
# without systemd-run's own cost.
TIMED = (
    'a=$EPOCHREALTIME; "$@"; rc=$?; b=$EPOCHREALTIME; '
    'printf "@@TIMED %s %s %s\\n" "$a" "$b" "$rc" >&2; exit "$rc"'
)
# The same inside the container, for a shell command line: its last output line and its time.
INNER = (
    'a=$EPOCHREALTIME; out=$(eval "$1" 2>&1); rc=$?; b=$EPOCHREALTIME; '
    'printf "%s\\n@@IN %s %s %s\\n" "${out##*$\'\\n\'}" "$a" "$b" "$rc"'
)
START = time.monotonic()


class BenchError(Exception):
    """A step of the benchmark failed."""


def say(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[devbox-test {stamp} +{time.monotonic() - START:6.0f}s] {message}", flush=True)


def run(
    argv: list[str],
    *,
    check: bool = True,
    timeout: float = WAIT,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        env=None if env is None else {**os.environ, **env},
        check=False,
    )
    if check and result.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)[:400]} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-2000:]}"
        )
    return result


def timed(argv: list[str], **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a systemd-run command line whose program is TIMED: (result, inner s, outer s)."""
    check = kwargs.pop("check", True)
    start = time.monotonic()
    result = run(argv, check=False, **kwargs)
    outer = time.monotonic() - start
    found = re.search(r"@@TIMED (\S+) (\S+) (\d+)", result.stderr)
    inner = float(found.group(2)) - float(found.group(1)) if found else outer
    result.stderr = re.sub(r"@@TIMED .*\n?", "", result.stderr)
    if check and result.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)[-500:]} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-2000:]}"
        )
    return result, inner, outer


def podman(
    user: str, *args: str, leave: bool = False, input_text: str | None = None, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """podman as the user, in the user's systemd manager, as scenario.py's user_podman runs it.

    leave: for a command that starts a container; KillMode=process keeps systemd from killing
    the container's conmon with the transient unit when podman exits.
    """
    argv = [
        "systemd-run",
        "--user",
        f"--machine={user}@",
        "--wait",
        "--collect",
        "--quiet",
        "--pipe",
        # The command line holds shell variables: systemd must not expand them itself.
        "--expand-environment=no",
        *(["--property=KillMode=process"] if leave else []),
        "/bin/bash",
        "-c",
        TIMED,
        "bash",
        str(PODMAN),
        *args,
    ]
    return timed(argv, input_text=input_text, check=check)


def as_image_unit(
    user: str, uid: int, *argv: str, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """A program run as the module runs its devbox-image-<user> unit: a system unit, User=."""
    return timed(
        [
            "systemd-run",
            "--wait",
            "--collect",
            "--quiet",
            "--pipe",
            "--expand-environment=no",
            f"--property=User={user}",
            f"--setenv=HOME=/home/{user}",
            f"--setenv=XDG_RUNTIME_DIR=/run/user/{uid}",
            f"--setenv=PATH={PODMAN.parent}:/usr/bin:/bin",
            "/bin/bash",
            "-c",
            TIMED,
            "bash",
            *argv,
        ],
        check=check,
    )


def du(path: Path) -> dict[str, int]:
    """Bytes under path: apparent (du --apparent-size) and allocated (du), one file system."""
    if not path.exists():
        return {"apparent": 0, "allocated": 0}
    apparent = run(["du", "-sx", "--apparent-size", "-B1", str(path)]).stdout.split()[0]
    allocated = run(["du", "-sx", "-B1", str(path)]).stdout.split()[0]
    return {"apparent": int(apparent), "allocated": int(allocated)}


def storage(user: str) -> Path:
    return Path(f"/home/{user}/.local/share/containers/storage")


def activity_record(user: str) -> Path:
    """The monitor's record on the container's volume (the default rootless volume path)."""
    return storage(user) / "volumes/bench-data/_data/.local/state/devbox/activity.json"


def wait_for_mtime(path: Path, after: float, timeout: float = 300) -> float:
    """Seconds from `after` (wall clock) until path was written after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        if mtime > after:
            return mtime - after
        time.sleep(0.25)
    raise BenchError(f"{path} was not written within {timeout:.0f} s")


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


class Recorder:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "ok": False,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "phases": {},
            "designs": {name: {"ok": False, "users": []} for name in DESIGNS},
            "notes": [],
        }

    def save(self) -> None:
        self.data["guest_seconds"] = round(time.monotonic() - START, 1)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        tmp.replace(RESULTS)

    def phase(self, name: str, action: Callable[[], Any]) -> Any:
        say(f"{name} ...")
        start = time.monotonic()
        try:
            return action()
        finally:
            self.data["phases"][name] = round(time.monotonic() - start, 1)
            say(f"{name}: {self.data['phases'][name]:.1f} s")
            self.save()


# --- Set-up --------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    version = run([str(PODMAN), "version", "--format", "{{.Client.Version}}"], check=False)
    nix = run(["nix-store", "--version"], check=False)
    return {
        "kernel": os.uname().release,
        "podman": version.stdout.strip(),
        "nix": nix.stdout.strip(),
        "cpus": os.cpu_count(),
        "memory_kib": int(Path("/proc/meminfo").read_text().split()[1]),
        "debian": Path("/etc/debian_version").read_text().strip(),
    }


def nix_daemon() -> dict[str, Any]:
    """A real nix-daemon: Debian 13's nix-setup-systemd, from the base or from the test disk."""
    unit = Path("/usr/lib/systemd/system/nix-daemon.socket")
    found: dict[str, Any] = {"in_base": unit.exists()}
    if not unit.exists():
        debs = sorted((TEST / "debs").glob("nix-setup-systemd_*.deb"))
        if not debs:
            raise BenchError("no nix-daemon in the base and no nix-setup-systemd .deb on the disk")
        run(["dpkg", "-i", str(debs[-1])], env={"DEBIAN_FRONTEND": "noninteractive"})
        found["installed"] = debs[-1].name
    run(["systemctl", "start", "nix-daemon.socket"])
    found["socket"] = (DAEMON_SOCKET / "socket").exists()
    return found


def users() -> dict[str, list[tuple[str, int]]]:
    return {
        design: [(f"{design}-{name}", base + i) for i, name in enumerate(NAMES)]
        for design, base in DESIGNS.items()
    }


def create_users() -> dict[str, Any]:
    everyone = [u for group in users().values() for u in group] + [(PROBE_USER, PROBE_UID)]
    for index, (name, uid) in enumerate(everyone):
        run(["useradd", "--create-home", "--uid", str(uid), "--shell", "/bin/bash", name])
        for table in ("/etc/subuid", "/etc/subgid"):
            lines = Path(table).read_text().splitlines() if Path(table).exists() else []
            if not any(line.startswith(f"{name}:") for line in lines):
                with Path(table).open("a") as f:
                    f.write(f"{name}:{300000 + index * 65536}:65536\n")
    run(["loginctl", "enable-linger", *(name for name, _ in everyone)])
    start = time.monotonic()
    for name, uid in everyone:
        while (
            run(["systemctl", "is-active", f"user@{uid}.service"], check=False).stdout.strip()
            != "active"
        ):
            if time.monotonic() - start > WAIT:
                raise BenchError(f"{name}'s systemd manager did not start")
            time.sleep(1)
    return {"users": len(everyone), "managers_seconds": round(time.monotonic() - start, 1)}


def load_make_image() -> Any:
    spec = importlib.util.spec_from_file_location("make_image", TEST / "guest" / "make-image.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_contents() -> dict[str, Any]:
    """The image's files, once: one directory (for the store) and today's archive from it."""
    root = WORK / "devbox-image-root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    WORK.chmod(0o755)
    run(["tar", "-xpf", str(ROOTFS_TAR), "-C", str(root), "--numeric-owner"])
    top = WORK / "top.tar"
    load_make_image().top_layer(FILES, SRC, top)
    run(["tar", "-xpf", str(top), "-C", str(root), "--numeric-owner"])
    top.unlink()
    started = time.monotonic()
    compiled = run(
        [
            "python3",
            "-m",
            "compileall",
            "-q",
            "-j",
            "2",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            "-p",
            "/",
            str(root / "usr/lib/python3.13"),
            str(root / "usr/lib/python3/dist-packages"),
        ],
        check=False,
        timeout=1800,
    )
    compile_seconds = time.monotonic() - started
    rootfs = WORK / "rootfs-pyc.tar"
    run(
        [
            "tar",
            "-C",
            str(root),
            "--numeric-owner",
            "-cf",
            str(rootfs),
            *sorted(p.name for p in root.iterdir()),
        ]
    )
    archive = WORK / "today-devcontainer.tar"
    # make-image.py exactly as scenario.py's install() runs it, on this rootfs.
    run(
        [
            "python3",
            str(TEST / "guest" / "make-image.py"),
            str(rootfs),
            str(FILES),
            str(SRC),
            str(archive),
        ]
    )
    rootfs.unlink()
    archive.chmod(0o644)
    return {
        "root": str(root),
        "files": int(run(["bash", "-c", f"find {root} -type f | wc -l"]).stdout),
        "root_bytes": du(root),
        "compileall_exit": compiled.returncode,
        "compileall_seconds": round(compile_seconds, 1),
        "archive": str(archive),
        "archive_bytes": archive.stat().st_size,
    }


# --- The designs' one-time root steps ------------------------------------------------------


def nixstore_root_step(root: Path) -> dict[str, Any]:
    started = time.monotonic()
    store_path = run(["nix-store", "--add", str(root)], timeout=1800).stdout.strip()
    added = time.monotonic() - started
    run(
        [
            "nix-store",
            "--realise",
            "--add-root",
            "/nix/var/nix/gcroots/devbox-image-root",
            store_path,
        ],
        check=False,
    )
    started = time.monotonic()
    layer = WORK / "nixstore-layer.tar"
    make_image = load_make_image()
    counts = make_image.minimal_layer(root, store_path, layer)
    archive = WORK / "nixstore-devcontainer.tar"
    make_image.write_archive(
        [layer],
        "devbox/devcontainer-nixstore:latest",
        archive,
        "tests/system/guest/image_designs.py (nixstore)",
    )
    return {
        "store_path": store_path,
        "nix_store_add_seconds": round(added, 1),
        "minimal_image_seconds": round(time.monotonic() - started, 1),
        "minimal_layer_entries": counts,
        "minimal_layer_bytes": layer.stat().st_size,
        "archive": str(archive),
        "archive_bytes": archive.stat().st_size,
        "store_path_bytes": du(Path(store_path)),
    }


STORE_CONF = f"""# The image store every user reads (additionalimagestores), written by root only.
[storage]
driver = "overlay"
graphroot = "{SHARED_STORE}"
runroot = "/run/devbox/images"

[storage.options.overlay]
# The users read root's layers: files are stored readable (mode 0755), their real owner and
# mode in an extended attribute that fuse-overlayfs shows in the containers.
force_mask = "shared"
mount_program = "/usr/bin/fuse-overlayfs"
"""

USER_CONF = f"""# Written for the addstore design: the shared image store, read-only, and fuse-overlayfs
# (which shows the force_mask store's files with their real owner and mode).
[storage]
driver = "overlay"

[storage.options]
additionalimagestores = ["{SHARED_STORE}"]

[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"
"""

PROBE_CONF = f"""# The addstore design's store read with the kernel's overlay (no mount_program): a probe.
[storage]
driver = "overlay"

[storage.options]
additionalimagestores = ["{SHARED_STORE}"]
"""


def modes(path: Path) -> dict[str, str]:
    """Modes of what a reader of the shared store has to pass or read (one layer's dirs)."""
    names = ["", "overlay", "overlay/l", "overlay-images", "overlay-layers"]
    names += ["overlay-images/images.lock", "overlay-images/images.json"]
    layers = sorted(p for p in (path / "overlay").glob("*") if (p / "diff").is_dir())
    if layers:
        names += [str(layers[0].relative_to(path)), str((layers[0] / "diff").relative_to(path))]
    found = {}
    for name in names:
        target = path / name
        if target.exists():
            found[name or "."] = oct(target.stat().st_mode & 0o7777)
    return found


def open_store_metadata() -> int:
    """The workaround for a store its readers cannot enter (containers/storage#2142): its
    directories a+rx and its metadata files a+r; the layers' contents (below each diff/) are
    left as force_mask made them. Root's own libpod database stays closed. How many changed."""
    changed = 0
    for dirpath, dirnames, filenames in os.walk(SHARED_STORE):
        here = Path(dirpath)
        parts = here.relative_to(SHARED_STORE).parts
        if parts[:1] in (("libpod",), ("volumes",), ("secrets",)):
            dirnames[:] = []
            continue
        inside_layer = len(parts) >= 3 and parts[0] == "overlay" and parts[2] == "diff"
        mode = here.stat().st_mode & 0o7777
        if mode | 0o555 != mode:
            here.chmod(mode | 0o555)
            changed += 1
        if inside_layer:
            dirnames[:] = []
            continue
        for name in filenames:
            file = here / name
            if file.is_symlink():
                continue
            mode = file.stat().st_mode & 0o7777
            if mode | 0o444 != mode:
                file.chmod(mode | 0o444)
                changed += 1
    return changed


def addstore_root_step(archive: Path) -> dict[str, Any]:
    SHARED_STORE_CONF.parent.mkdir(parents=True, exist_ok=True)
    SHARED_STORE_CONF.write_text(STORE_CONF)
    # As a module would make it (tmpfiles): the store's directory open to every user.
    SHARED_STORE.mkdir(mode=0o755, exist_ok=True)
    SHARED_STORE.chmod(0o755)
    env = {"CONTAINERS_STORAGE_CONF": str(SHARED_STORE_CONF)}
    started = time.monotonic()
    loaded = run([str(PODMAN), "load", "--quiet", "--input", str(archive)], env=env, timeout=1800)
    seconds = time.monotonic() - started
    name = next(
        (
            line.removeprefix("Loaded image: ").strip()
            for line in loaded.stdout.splitlines()
            if line.startswith("Loaded image: ")
        ),
        "",
    )
    if name and name != REFERENCE:
        run([str(PODMAN), "tag", name, REFERENCE], env=env)
    inspect = json.loads(run([str(PODMAN), "image", "inspect", REFERENCE], env=env).stdout)[0]
    return {
        "load_seconds": round(seconds, 1),
        "loaded_as": name,
        "id": inspect["Id"],
        "digest": inspect.get("Digest"),
        "repo_digests": inspect.get("RepoDigests"),
        "modes": modes(SHARED_STORE),
        "store_bytes": du(SHARED_STORE),
    }


def write_user_conf(user: str, text: str) -> None:
    conf = Path(f"/home/{user}/.config/containers/storage.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)
    for path in (conf.parent.parent, conf.parent, conf):
        shutil.chown(path, user, user)


# --- Per user ------------------------------------------------------------------------------


def make_available(
    design: str, user: str, uid: int, archive: Path, d: dict[str, Any], entry: dict[str, Any]
) -> float:
    """The design's part of the switch that adds the user's first container; its seconds."""
    if design in ("today", "nixstore"):
        result, inner, _ = as_image_unit(
            user, uid, "/bin/bash", str(LOADER), str(archive), REFERENCE
        )
        entry["loader_output"] = (result.stdout + result.stderr).strip()[-300:]
        return inner
    # addstore: the user's storage.conf (a module would lay it with tmpfiles), then the first
    # podman command, which sets up the user's storage and finds the shared image.
    write_user_conf(user, USER_CONF)
    result, inner, _ = as_image_unit(
        user, uid, "podman", "image", "inspect", "--format", "{{.Id}}", d["reference"], check=False
    )
    entry["first_inspect"] = (result.stdout + result.stderr).strip()[-600:]
    if result.returncode != 0:
        if "by_name" in d:
            raise BenchError(f"{user} cannot see {d['reference']}: {entry['first_inspect']}")
        d["reference"] = addstore_reference(user, uid, d, result)
        entry["load_note"] = "the first look-up failed (by_name); measured again after it"
        result, inner, _ = as_image_unit(
            user, uid, "podman", "image", "inspect", "--format", "{{.Id}}", d["reference"]
        )
    return inner


def addstore_reference(
    user: str, uid: int, d: dict[str, Any], by_name: subprocess.CompletedProcess[str]
) -> str:
    """What the units can run when the tag root gave the image does not work: the result."""
    d["by_name"] = {"ok": False, "output": (by_name.stdout + by_name.stderr).strip()[-800:]}
    if "permission denied" in by_name.stderr:
        # The store as root wrote it cannot be read by the user: that is the result; then the
        # usual workaround (containers/storage#2142), so that the rest can be measured.
        d["modes_before_workaround"] = modes(SHARED_STORE)
        d["workaround"] = {
            "what": "directories a+rx, metadata files a+r (layers' contents left as they were)",
            "changed": open_store_metadata(),
        }
        d["modes_after_workaround"] = modes(SHARED_STORE)
        again, _, _ = as_image_unit(user, uid, "podman", "image", "inspect", REFERENCE, check=False)
        d["after_workaround"] = {
            "ok": again.returncode == 0,
            "output": (again.stdout + again.stderr).strip()[-800:],
        }
        if again.returncode == 0:
            return REFERENCE
    image_id = d["root_step"]["id"]
    by_id, _, _ = as_image_unit(user, uid, "podman", "image", "inspect", image_id, check=False)
    d["by_id"] = {"ok": by_id.returncode == 0, "output": (by_id.stdout + by_id.stderr)[-800:]}
    if by_id.returncode == 0:
        return image_id
    raise BenchError(f"{user} finds the shared image neither by name nor by id")


def run_argv(user: str, reference: str) -> list[str]:
    """The podman run Quadlet writes for a devbox container (scenario.py's bare baseline), with
    the host's store and daemon socket mounted as devbox's units mount them."""
    mounts = ["-v", "/nix/store:/nix/store:ro"]
    if DAEMON_SOCKET.exists():
        mounts += ["-v", f"{DAEMON_SOCKET}:{DAEMON_SOCKET}:ro"]
    return [
        "run",
        "--name",
        "bench",
        "--hostname",
        "bench",
        "--stop-timeout",
        "30",
        "--pull",
        "never",
        "--init=false",
        "-d",
        "-v",
        "bench-data:/home/dev",
        *mounts,
        "--env",
        "CONTAINER_NAME=bench",
        "--env",
        f"DEVBOX_OWNER={user}",
        "--env",
        "DEVBOX_SYNCTHING=0",
        "--env",
        f"DEVBOX_TS_TAGS=tag:devcontainer,tag:{user}-container",
        "--env",
        "NIX_REMOTE=daemon",
        "--secret",
        "bench-key,type=mount,target=ts-authkey,uid=1000,gid=1000,mode=0400",
        "--cpus=1",
        "--memory=512M",
        reference,
    ]


def add_user(design: str, user: str, uid: int, archive: Path, d: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"user": user}
    d["users"].append(entry)
    entry["load_seconds"] = round(make_available(design, user, uid, archive, d, entry), 2)
    podman(user, "secret", "create", "--replace", "bench-key", "-", input_text="tskey-auth-bench")
    started = time.time()
    result, inner, _ = podman(user, *run_argv(user, d["reference"]), leave=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"podman run as {user}: {(result.stdout + result.stderr)[-1500:]}")
    entry["run_seconds"] = round(inner, 2)
    try:
        entry["ready_seconds"] = round(wait_for_mtime(activity_record(user), started), 2)
    except BenchError:
        logs, _, _ = podman(user, "logs", "bench", check=False)
        raise BenchError(
            f"{user}'s container never wrote its activity record; its output:\n"
            f"{(logs.stdout + logs.stderr)[-1500:]}"
        ) from None
    entry["to_running_seconds"] = round(entry["load_seconds"] + entry["run_seconds"], 2)
    entry["to_ready_seconds"] = round(entry["load_seconds"] + entry["ready_seconds"], 2)
    say(
        f"{design}: {user} load {entry['load_seconds']:.1f} s, run {entry['run_seconds']:.1f} s, "
        f"monitor's first record {entry['ready_seconds']:.1f} s after run"
    )
    return entry


def disk(design: str, names: list[str], shared: dict[str, Path]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "users": {name: du(storage(name)) for name in names},
        "shared": {label: {"path": str(path), **du(path)} for label, path in shared.items()},
    }
    for kind in ("apparent", "allocated"):
        found[f"total_{kind}"] = sum(u[kind] for u in found["users"].values()) + sum(
            s[kind] for s in found["shared"].values()
        )
    say(
        f"{design}: {len(names)} user(s): {found['total_allocated'] / 2**20:.1f} MiB allocated in all"
    )
    return found


def design_setup(rec: Recorder, design: str, contents: dict[str, Any]) -> None:
    d = rec.data["designs"][design]
    group = users()[design]
    d["reference"] = REFERENCE
    today = Path(contents["archive"])
    archive = today
    shared: dict[str, Path] = {"archive": today}
    if design == "nixstore":
        step = nixstore_root_step(Path(contents["root"]))
        d["root_step"] = step
        archive = Path(step["archive"])
        shared = {"archive": archive, "store path": Path(step["store_path"])}
        query = run(
            [
                "runuser",
                "-u",
                group[0][0],
                "--",
                "env",
                "NIX_REMOTE=daemon",
                "nix-store",
                "--query",
                "--hash",
                step["store_path"],
            ],
            check=False,
        )
        d["daemon_query_by_user"] = (query.stdout + query.stderr).strip()[-300:]
    elif design == "addstore":
        d["root_step"] = addstore_root_step(today)
        shared = {"archive": today, "shared store": SHARED_STORE}
    rec.save()
    for index, (user, uid) in enumerate(group):
        add_user(design, user, uid, archive, d)
        if index == 0:
            d["disk_1"] = disk(design, [user], shared)
            d["info"] = podman_info(user)
        rec.save()
    d["disk_4"] = disk(design, [u for u, _ in group], shared)
    for user, _ in group[1:]:
        podman(user, "stop", "-t", "10", "bench", check=False)
    d["ownership_in_container"] = podman(
        group[0][0],
        "exec",
        "bench",
        "stat",
        "-c",
        "%u:%g %a %n",
        "/usr/bin/bash",
        "/etc/passwd",
        "/home/dev",
        check=False,
    )[0].stdout.strip()
    d["ok"] = True


def podman_info(user: str) -> dict[str, Any]:
    result, _, _ = podman(user, "info", "--format", "json", check=False)
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"error": (result.stdout + result.stderr)[-500:]}
    store = info.get("store", {})
    images, _, _ = podman(
        user, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} ro={{.ReadOnly}}", check=False
    )
    return {
        "graphDriverName": store.get("graphDriverName"),
        "graphOptions": store.get("graphOptions"),
        "graphStatus": store.get("graphStatus"),
        "graphRoot": store.get("graphRoot"),
        "images": images.stdout.strip().splitlines(),
    }


# --- Repeated measures ---------------------------------------------------------------------


def starts(rec: Recorder, reps: int) -> None:
    """podman start of each design's first container, REPS times, interleaved."""
    active = [d for d in DESIGNS if rec.data["designs"][d]["ok"]]
    for design in active:
        rec.data["designs"][design]["start"] = {"seconds": [], "ready": [], "stop": []}
    for rep in range(reps):
        for design in active:
            user = users()[design][0][0]
            record = rec.data["designs"][design]["start"]
            _, stop, _ = podman(user, "stop", "-t", "10", "bench")
            started = time.time()
            _, seconds, _ = podman(user, "start", "bench", leave=True)
            ready = wait_for_mtime(activity_record(user), started)
            record["stop"].append(round(stop, 3))
            record["seconds"].append(round(seconds, 3))
            record["ready"].append(round(ready, 3))
        say(f"start rep {rep + 1}/{reps} done")
    for design in active:
        record = rec.data["designs"][design]["start"]
        record["median"] = median(record["seconds"])
        record["ready_median"] = median(record["ready"])


def reads(rec: Recorder, reps: int) -> None:
    """Each command once (first, not in the median), then REPS times, interleaved between the
    designs."""
    active = [d for d in DESIGNS if rec.data["designs"][d]["ok"]]
    for design in active:
        rec.data["designs"][design]["reads"] = {
            label: {"seconds": [], "exec": [], "outputs": []} for label in READS
        }
    for label, command in READS.items():
        for rep in range(reps + 1):
            for design in active:
                user = users()[design][0][0]
                record = rec.data["designs"][design]["reads"][label]
                result, _, outer = podman(
                    user, "exec", "bench", "/bin/bash", "-c", INNER, "bash", command, check=False
                )
                found = re.search(r"^@@IN (\S+) (\S+) (\d+)$", result.stdout, re.MULTILINE)
                if not found or found.group(3) != "0":
                    record["error"] = (result.stdout + result.stderr)[-800:]
                    continue
                seconds = float(found.group(2)) - float(found.group(1))
                output = result.stdout[: found.start()].strip().splitlines()
                if rep == 0:
                    record["first"] = round(seconds, 3)
                    record["outputs"].append(output[-1] if output else "")
                else:
                    record["seconds"].append(round(seconds, 3))
                    record["exec"].append(round(outer, 3))
        say(f"reads: {label} done")
        rec.save()
    for design in active:
        for record in rec.data["designs"][design]["reads"].values():
            record["median"] = median(record["seconds"])
            record["exec_median"] = median(record["exec"])


def native_overlay_probe() -> dict[str, Any]:
    """addstore's shared store read with the kernel's overlay instead of fuse-overlayfs."""
    write_user_conf(PROBE_USER, PROBE_CONF)
    script = (
        "stat -c '%u:%g %a %n' /usr/bin/bash /etc/passwd /home/dev; "
        "python3 -c 'import pydantic, jinja2' && echo import-ok; touch /tmp/x && echo write-ok"
    )
    result, seconds, _ = podman(
        PROBE_USER,
        "run",
        "--rm",
        "--pull",
        "never",
        "--entrypoint",
        "/bin/bash",
        REFERENCE,
        "-c",
        script,
        check=False,
    )
    info = podman_info(PROBE_USER)
    return {
        "exit": result.returncode,
        "seconds": round(seconds, 2),
        "output": (result.stdout + result.stderr).strip()[-1500:],
        "graphOptions": info.get("graphOptions"),
    }


def main() -> None:
    config = json.loads((TEST / "bench-config.json").read_text())
    reps = int(config.get("reps", 5))
    read_reps = int(config.get("read_reps", 3))
    rec = Recorder()
    rec.data["reps"] = {"starts": reps, "reads": read_reps}
    try:
        rec.data["environment"] = environment()
        rec.data["nix_daemon"] = rec.phase("nix daemon", nix_daemon)
        rec.data["users"] = rec.phase("users and their managers", create_users)
        contents = rec.phase(
            "the image's files (rootfs, top layer, bytecode, archive)", build_contents
        )
        rec.data["contents"] = contents
        for design in DESIGNS:
            try:
                rec.phase(
                    f"{design}: one-time step and four users",
                    lambda d=design: design_setup(rec, d, contents),
                )
            except Exception as exc:  # a design that fails is a result; the others go on
                d = rec.data["designs"][design]
                d["error"] = f"{type(exc).__name__}: {exc}"[-3000:]
                d["traceback"] = traceback.format_exc()[-3000:]
                say(f"{design} FAILED: {d['error'][:600]}")
        rec.phase("container starts", lambda: starts(rec, reps))
        rec.phase("reads in the containers", lambda: reads(rec, read_reps))
        try:
            rec.data["native_overlay_probe"] = rec.phase(
                "probe: the shared store with the kernel's overlay", native_overlay_probe
            )
        except Exception as exc:
            rec.data["native_overlay_probe"] = {"error": f"{type(exc).__name__}: {exc}"[-1500:]}
        rec.data["ok"] = all(rec.data["designs"][d]["ok"] for d in DESIGNS)
    except Exception as exc:
        rec.data["error"] = f"{type(exc).__name__}: {exc}"[-3000:]
        rec.data["traceback"] = traceback.format_exc()[-3000:]
        say(f"FAILED: {rec.data['error'][:800]}")
    rec.save()
    say(f"done: {'ok' if rec.data['ok'] else 'FAILED'} after {time.monotonic() - START:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
