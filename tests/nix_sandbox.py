"""Nix's own build sandbox, run here: a chroot store, the check inputs copied into it, a build.

Debian 13's Nix 2.26 (scripts/setup.sh: the system's on Debian 13, `.tools/nix` on Debian 12)
builds in a store of its own (`--store DIR`: store paths are /nix/store/… inside the build,
files under DIR/nix/store here), as root with Debian's `nixbld` build users and
`sandbox = true`. The builder then runs as NixOS runs it: uid 1000 with no capabilities, in
namespaces of its own, with only loopback, `/bin/sh` and nothing else in `/bin`, no `/usr`,
`HOME=/homeless-shelter` and `TMPDIR=/build`.

There is no binary cache and no nixpkgs here, so nixpkgs' packages cannot be built. What the
flake's check declares (python3 with its packages, nix, jq, shellcheck, git, the Quadlet of
podman, stdenv's own tools) is copied into the store from this machine instead, together with
what it needs at run time, as nixpkgs' packages are laid out:

- each program's ELF interpreter and shared libraries go into a store path of their own
  (`runtime-libraries-*`, one per C library: Debian 12's system and Debian 13's unpacked Nix
  differ), and every copied ELF file is patched (patchelf) to load from there, as nixpkgs'
  autoPatchelfHook does: nothing is read from the machine's /lib or /usr/lib;
- scripts' `#!` lines name the copied interpreters (nixpkgs' patchShebangs);
- Python is the interpreter with its standard library (`python3`), and the check's Python
  packages are a store path of their own on PYTHONPATH (`python3-check-packages`), as a
  nixpkgs build's dependencies are;
- git and file get the data they read at run time (git's exec path and templates, the magic
  database) through a wrapper, as nixpkgs' own builds of them find theirs in their store path.

These paths are added with `nix store add-path`, which records no references: a build that
uses them lists every one of them among its inputs (tools.json, read by the .nix files in
tests/nix/sandbox/).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from declared_programs import ALSO, STDENV, executables
from nix_eval import nix_version, nixpkgs_lib
from support import REPO, find_quadlet, require_tool

SANDBOX_DIR = REPO / "tests" / "nix" / "sandbox"
ARCH_LIBS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "ld-linux-x86-64.so.2"

# The options of a sandboxed build by root without a daemon (ENVIRONMENT.md, checked here).
SANDBOX_OPTIONS = {
    "sandbox": "true",
    "sandbox-fallback": "false",
    "build-users-group": "nixbld",
    "substituters": "",
    "build-hook": "",
    "cores": "2",
    "max-jobs": "1",
}


def nix_program() -> str:
    """Nix 2.26's `nix`: setup.sh's wrapper beside its nix-instantiate, or the system's."""
    candidates = []
    fileset_nix = os.environ.get("DEVBOX_FILESET_NIX")
    if fileset_nix:
        candidates.append(str(Path(fileset_nix).parent / "nix"))
    candidates += [str(REPO / ".tools/nix/bin/nix"), shutil.which("nix")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and nix_version(candidate) >= (2, 26):
            return candidate
    return require_tool("Nix >= 2.26 (scripts/setup.sh installs it)", None)


def sandbox_shell() -> str:
    """The sandbox's /bin/sh: Debian's bash-static, which runs no programs of its own.

    NixOS gives builds a minimal busybox (nixpkgs' busybox-sandbox-shell: ash and its
    builtins, no applets). Debian's busybox-static has every applet, so `ls` would work in a
    build with an empty PATH: more lenient than NixOS. bash-static has only bash's builtins.
    """
    return require_tool("bash-static (the sandbox's /bin/sh)", shutil.which("bash-static"))


@dataclass
class Sandbox:
    """A chroot store and the `nix` that builds in it."""

    store: Path
    nix: str = field(default_factory=nix_program)

    def command(self, *args: str) -> list[str]:
        argv = [self.nix, "--extra-experimental-features", "nix-command", *args]
        argv += ["--store", str(self.store)]
        return argv

    def add(self, directory: Path) -> str:
        """Put a directory into the store (store modes, no references): its store path."""
        result = subprocess.run(
            self.command("store", "add-path", str(directory)),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def build(
        self, nix_file: Path, log: Path, **arguments: str
    ) -> subprocess.CompletedProcess[str]:
        """`nix build --file NIX_FILE` in the sandbox; the build's log goes to LOG."""
        argv = self.command("build", "--file", str(nix_file), "--print-out-paths", "-L")
        argv += ["--no-link", "--option", "sandbox-paths", f"/bin/sh={sandbox_shell()}"]
        for name, value in SANDBOX_OPTIONS.items():
            argv += ["--option", name, value]
        for name, value in arguments.items():
            argv += ["--arg", name, value]
        with log.open("w") as output:
            return subprocess.run(
                argv, stdout=subprocess.PIPE, stderr=output, text=True, check=False
            )

    def log(self, store_path: str) -> str:
        """The log Nix kept of the build of a store path."""
        result = subprocess.run(
            self.command("log", store_path), capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def real(self, store_path: str) -> Path:
        """Where a store path's files are on this machine."""
        return self.store / store_path.lstrip("/")


# --- ELF files -------------------------------------------------------------------------------


def is_elf(path: Path) -> bool:
    """An ELF program or shared library (not an object file: e_type EXEC or DYN)."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        header = handle.read(18)
    return header[:4] == b"\x7fELF" and header[16] in (2, 3)


def patchelf() -> str:
    return require_tool("patchelf", shutil.which("patchelf"))


def interpreter(path: Path) -> str | None:
    """The ELF file's program interpreter (its dynamic loader), or None for a library."""
    result = subprocess.run(
        [patchelf(), "--print-interpreter", str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


LISTED = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")


def libraries(path: Path, loader: str, library_path: str | None) -> list[Path]:
    """The shared libraries the loader resolves for an ELF file, in its own search order."""
    argv = [loader, *(["--library-path", library_path] if library_path else []), "--list"]
    result = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False)
    found = []
    for line in result.stdout.splitlines():
        match = LISTED.match(line)
        if match:
            found.append(Path(match.group(2)))
    return found


@dataclass
class CLibrary:
    """One C library's loader with the shared libraries programs built against it need."""

    name: str
    loader: str
    library_path: str | None = None
    needed: dict[str, Path] = field(default_factory=dict)
    store_path: str = ""

    def collect(self, elf: Path) -> None:
        for library in libraries(elf, self.loader, self.library_path):
            self.needed.setdefault(library.name, library)

    def stage(self, folder: Path) -> Path:
        directory = folder / f"runtime-libraries-{self.name}"
        (directory / "lib").mkdir(parents=True)
        shutil.copy2(self.loader, directory / "lib" / LOADER)
        for name, library in sorted(self.needed.items()):
            target = directory / "lib" / name
            if not target.exists():
                shutil.copy2(library, target)
            # A RUNPATH serves only its own object's libraries: each library finds its own
            # beside it, as nixpkgs' libraries find theirs in their store paths.
            if name not in ("libc.so.6", LOADER):
                target.chmod(0o644)
                subprocess.run([patchelf(), "--set-rpath", "$ORIGIN", str(target)], check=True)
        return directory

    @property
    def lib(self) -> str:
        return f"{self.store_path}/lib"


def system_c_library() -> CLibrary:
    return CLibrary("debian", str(Path("/lib64") / LOADER))


# --- packages --------------------------------------------------------------------------------


@dataclass
class Package:
    """A store path standing for one nixpkgs package: files copied in, then patched."""

    name: str
    c_library: CLibrary
    files: dict[str, Path] = field(default_factory=dict)  # path in the package → source
    links: dict[str, str] = field(default_factory=dict)  # path in the package → link target
    wrappers: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    store_path: str = ""

    def add_tree(self, source: Path, target: str, skip: tuple[str, ...] = ()) -> None:
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if any(part in skip for part in relative.parts):
                continue
            if path.is_symlink():
                self.links[f"{target}/{relative}"] = str(path.readlink())
            elif path.is_file():
                self.files[f"{target}/{relative}"] = path

    def elves(self) -> list[Path]:
        return [source for source in self.files.values() if is_elf(source)]


def debian_program_package(attribute: str, c_library: CLibrary) -> Package:
    """The Debian build of a nixpkgs attribute's programs (declared_programs.py's mapping)."""
    package = Package(attribute, c_library)
    programs = executables(attribute)
    for program in programs:
        package.files[f"bin/{program.name}"] = program.resolve()
    for name, target in ALSO.get(attribute, {}).items():
        package.links[f"bin/{name}"] = target
    return package


def git_package(c_library: CLibrary) -> Package:
    """git, with its exec path and templates in the store path (GIT_EXEC_PATH, as nixpkgs')."""
    package = Package("git", c_library)
    exec_path = Path(
        subprocess.run(
            ["git", "--exec-path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    package.add_tree(exec_path, "libexec/git-core")
    templates = Path("/usr/share/git-core/templates")
    if templates.is_dir():
        package.add_tree(templates, "share/git-core/templates")
    package.wrappers["bin/git"] = (
        "libexec/git-core/git",
        {"GIT_EXEC_PATH": "libexec/git-core", "GIT_TEMPLATE_DIR": "share/git-core/templates"},
    )
    return package


def file_package(c_library: CLibrary) -> Package:
    package = debian_program_package("file", c_library)
    source = package.files.pop("bin/file")
    package.files["libexec/file"] = source
    magic = Path("/usr/lib/file/magic.mgc")
    package.files["share/misc/magic.mgc"] = magic.resolve()
    package.wrappers["bin/file"] = ("libexec/file", {"MAGIC": "share/misc/magic.mgc"})
    return package


def nix_package(known: list[CLibrary]) -> Package:
    """Nix 2.26: the system's (Debian 13) or the unpacked one under .tools/nix (Debian 12)."""
    nix = Path(nix_program())
    unpacked = REPO / ".tools/nix/root"
    if nix.resolve().is_relative_to(REPO / ".tools"):
        c_library = CLibrary(
            "debian13",
            str(unpacked / "usr/lib64" / LOADER),
            ":".join(str(unpacked / part) for part in ARCH_LIBS),
        )
        known.append(c_library)
        binary = unpacked / "usr/bin/nix"
    else:
        c_library = known[0]
        binary = nix.resolve()
    package = Package("nix", c_library)
    package.files["bin/nix"] = binary
    for name in ("nix-build", "nix-env", "nix-hash", "nix-instantiate", "nix-shell", "nix-store"):
        package.links[f"bin/{name}"] = "nix"
    return package


def quadlet_package(c_library: CLibrary) -> Package:
    """podman's Quadlet, where nixpkgs' podman has it (libexec/podman/quadlet)."""
    package = Package("podman-quadlet", c_library)
    package.files["libexec/podman/quadlet"] = Path(
        require_tool("Quadlet", find_quadlet())
    ).resolve()
    return package


def python_package(c_library: CLibrary) -> Package:
    """The interpreter and its standard library, without site-packages (python3)."""
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    package = Package("python3", c_library)
    package.files[f"bin/{version}"] = (base / "bin" / version).resolve()
    package.links["bin/python3"] = version
    package.links["bin/python"] = version
    library = sysconfig.get_config_var("INSTSONAME")
    if library and (base / "lib" / library).exists():
        package.files[f"lib/{library}"] = (base / "lib" / library).resolve()
    skip = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "__pycache__")
    skip += (sysconfig.get_config_var("LIBPL").rsplit("/", 1)[-1],)  # for building C extensions
    package.add_tree(base / "lib" / version, f"lib/{version}", skip)
    package.files = {
        name: source for name, source in package.files.items() if "_tkinter" not in name
    }
    return package


def distribution_closure(roots: dict[str, tuple[str, ...]]) -> set[str]:
    """The distributions these need at run time (each root with its extras), and theirs."""
    wanted = [(normalised(name), extras) for name, extras in roots.items()]
    seen: set[str] = set()
    while wanted:
        name, extras = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            markers = [{"extra": extra} for extra in ("", *extras)]
            if requirement.marker and not any(requirement.marker.evaluate(m) for m in markers):
                continue
            wanted.append((normalised(requirement.name), tuple(requirement.extras)))
    return seen


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_packages(name: str, distributions: set[str], c_library: CLibrary) -> Package:
    """One store path holding exactly these distributions of this environment: their files in
    lib/pythonX.Y/site-packages, their programs in bin/ (as a nixpkgs Python package set)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    package = Package(name, c_library)
    found = set()
    for distribution in importlib.metadata.distributions():
        if normalised(distribution.metadata["Name"]) not in distributions:
            continue
        found.add(normalised(distribution.metadata["Name"]))
        for file in distribution.files or []:
            source = Path(str(distribution.locate_file(file)))
            if "__pycache__" in file.parts or not source.is_file():
                continue
            if file.parts[0] == "..":
                if source.parent.name == "bin":
                    package.files[f"bin/{source.name}"] = source
                continue
            package.files[f"lib/{version}/site-packages/{file}"] = source
    missing = distributions - found
    assert not missing, f"not installed in this environment: {sorted(missing)}"
    return package


def check_distributions() -> set[str]:
    """What the flake's check has on PYTHONPATH: devbox's dependencies and its test extra
    (pyproject.toml's lists, which the flake reads), and the build system, setuptools."""
    closure = distribution_closure({"devbox": ("test",), "setuptools": ()})
    return closure - {"devbox"}


def runtime_distributions() -> set[str]:
    """What nixpkgs' wrapper of the package's programs puts on their path: devbox's run-time
    dependencies and theirs, nothing of the check's."""
    return distribution_closure({"devbox": ()}) - {"devbox"}


# --- staging ---------------------------------------------------------------------------------

SHEBANG = re.compile(rb"^#!\s*(\S+)(?:[ \t]+(\S+))?")


def rewrite_shebang(path: Path, interpreters: dict[str, str]) -> None:
    """patchShebangs: a `#!` naming a program by a path outside the store names its copy."""
    with path.open("rb") as handle:
        first = handle.readline()
    match = SHEBANG.match(first)
    if not match:
        return
    program = match.group(1).decode()
    name = Path(program).name
    argument = match.group(2).decode() if match.group(2) else ""
    if name == "env" and argument:
        name, argument = argument, ""
    if name.startswith("python"):
        name = "python3"
    if name == "sh":
        name = "bash"
    replacement = interpreters.get(name)
    if replacement is None or program.startswith("/nix/store/"):
        return
    line = f"#!{replacement}{' ' + argument if argument else ''}\n".encode()
    content = path.read_bytes()
    path.write_bytes(line + content[len(first) :])


def stage_package(package: Package, folder: Path, interpreters: dict[str, str], shell: str) -> Path:
    directory = folder / package.name
    for name, source in sorted(package.files.items()):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
        if is_elf(target):
            patch_elf(target, package.c_library)
        elif os.access(source, os.X_OK):
            rewrite_shebang(target, interpreters)
    for name, link in sorted(package.links.items()):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(link)
    for name, (program, environment) in sorted(package.wrappers.items()):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        exports = "".join(f'export {key}="$dir/{value}"\n' for key, value in environment.items())
        target.write_text(
            f"#!{shell}\n# {package.name}, with the data it reads at run time in its store path.\n"
            f'dir="${{BASH_SOURCE[0]%/bin/*}}"\n{exports}exec -a "$0" "$dir/{program}" "$@"\n'
        )
        target.chmod(0o755)
    return directory


def patch_elf(path: Path, c_library: CLibrary) -> None:
    """autoPatchelfHook: the loader and the libraries from the C library's store path.

    A program gets a DT_RPATH (patchelf --force-rpath): unlike a RUNPATH it also serves the
    libraries its libraries and its dlopen()ed modules load (Python's extension modules), so
    those stay as they are. A library that names a search path of its own (pyenv's, outside
    the store) gets the store's instead. Rewriting a library that needs none is left out:
    patchelf 0.14 breaks some of mypyc's (a segmentation fault when imported in the sandbox).
    """
    if interpreter(path):
        argv = ["--set-interpreter", f"{c_library.lib}/{LOADER}", "--force-rpath"]
    else:
        current = subprocess.run(
            [patchelf(), "--print-rpath", str(path)], capture_output=True, text=True, check=True
        )
        if not current.stdout.strip():
            return
        argv = []
    argv += ["--set-rpath", f"$ORIGIN/../lib:{c_library.lib}", str(path)]
    subprocess.run([patchelf(), *argv], check=True, capture_output=True)


# --- the whole set ---------------------------------------------------------------------------

# The check inputs a Debian package stands for (the Python ones come from this environment).
DEBIAN_CHECK_INPUTS = ("jq", "shellcheck")


def store_tools(sandbox: Sandbox, staging: Path) -> dict[str, str]:
    """Every package the flake's check needs, in the store: attribute → store path.

    Also `runtime-libraries-*` (the C libraries) and `nixpkgs` (nixpkgs' lib, which the
    check's DEVBOX_NIXPKGS_LIB names).
    """
    known = [system_c_library()]
    system = known[0]
    packages = [debian_program_package(a, system) for a in STDENV if a != "file"]
    packages += [file_package(system)]
    packages += [debian_program_package(a, system) for a in DEBIAN_CHECK_INPUTS]
    packages += [git_package(system), quadlet_package(system), nix_package(known)]
    packages += [
        python_package(system),
        python_packages("python3-check-packages", check_distributions(), system),
        python_packages("python3-runtime-packages", runtime_distributions(), system),
        # What nixpkgs' pypa build and install hooks bring (stdenv-phases.sh builds with pip).
        python_packages("python3-build-tools", {"pip"}, system),
    ]

    for package in packages:
        for elf in package.elves():
            package.c_library.collect(elf)
    # The C libraries first: every copied ELF file is patched to load from their store paths.
    for c_library in known:
        c_library.store_path = sandbox.add(c_library.stage(staging))

    tools = {f"runtime-libraries-{c.name}": c.store_path for c in known}
    by_name = {package.name: package for package in packages}
    order = ["bash", "python3"] + [p.name for p in packages if p.name not in ("bash", "python3")]
    interpreters: dict[str, str] = {}
    for name in order:
        package = by_name[name]
        shell = f"{tools['bash']}/bin/bash" if "bash" in tools else ""
        directory = stage_package(package, staging, interpreters, shell)
        tools[name] = package.store_path = sandbox.add(directory)
        if name == "bash":
            interpreters["bash"] = f"{package.store_path}/bin/bash"
        if name == "python3":
            interpreters["python3"] = f"{package.store_path}/bin/python3"
    tools["nixpkgs"] = sandbox.add(nixpkgs_lib_checkout(staging))
    return tools


def nixpkgs_lib_checkout(staging: Path) -> Path:
    """nixpkgs' lib as the check's DEVBOX_NIXPKGS_LIB names it: a tree holding lib/."""
    directory = staging / "nixpkgs"
    shutil.copytree(nixpkgs_lib(), directory / "lib", symlinks=True)
    return directory


def write_tools(tools: dict[str, str], path: Path) -> Path:
    """tools.json for the .nix files of tests/nix/sandbox/."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    value = {
        "paths": tools,
        "stdenv": list(STDENV),
        "sitePackages": f"lib/{version}/site-packages",
        # The check packages copy exactly these (python_packages refuses one not installed).
        "pythonDistributions": sorted(check_distributions()),
    }
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    return path
