#!/usr/bin/env bash
# Set up what devbox needs, on Debian 12 or 13. Safe to run twice: each step checks first and
# does nothing when its part is already there.
#   scripts/setup.sh           what the generator and the verbs need (the quick start,
#                              scripts/quickstart.sh): Nix (nix-instantiate reads users.nix), git
#                              (the verbs commit the declaration), and devbox in the Python
#                              environment .venv, with the pinned versions of
#                              scripts/constraints.txt
#   scripts/setup.sh --tests   that, and the test suite's toolchain (scripts/test.sh sources it
#                              so, with setup_tests=1):
#   - Debian packages: podman and runc (volumes, secrets, containers in the tests), shellcheck,
#     busybox-static (a tiny test image), jq (the image's entrypoint uses it; its tests run it),
#     the programs of Nix's stdenv (gawk, make, patch, file, ...), patchelf, bash-static and
#     nix-setup-systemd (the nixbld build users) for the flake's check in Nix's own sandbox
#     (tests/nix/test_check_sandbox.py), openssh-client and openssh-server (each host of a
#     simulated fleet runs an sshd of its own, tests/openssh.py; the tests never use the
#     system's sshd, which the package enables where services may start), and qemu-system-x86,
#     qemu-utils, debootstrap and e2fsprogs for the host test in a virtual machine
#     (tests/system/)
#   - Quadlet, podman's unit generator: Debian 13's podman has it; on Debian 12 (podman 4.3,
#     no Quadlet) the binary is taken from Debian 13's podman package into .tools/quadlet
#   - a Nix with lib.fileset (>= 2.14) for the tests that replay the flake's builds: Debian
#     13's nix-bin 2.26 (on Debian 12 unpacked into .tools/nix), and nixpkgs' lib
#   - the test and lint tools in .venv (the `test` and `lint` extras of generator/)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# Sourced (quickstart.sh, test.sh), the caller's arguments are not this script's: the caller
# says what it needs with setup_tests=1. Run on its own, --tests says it.
setup_tests=${setup_tests:-0}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "$#:${1:-}" in
    0:) ;;
    1:--tests) setup_tests=1 ;;
    *)
      echo "usage: scripts/setup.sh [--tests]" >&2
      exit 2
      ;;
  esac
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

say() { printf '==> %s\n' "$*"; }

packages=(nix-bin git ca-certificates)
if [ "$setup_tests" = 1 ]; then
  packages+=(nix-setup-systemd podman runc shellcheck busybox-static jq
    gawk make patch file bzip2 xz-utils diffutils iproute2 util-linux patchelf bash-static
    openssh-client openssh-server qemu-system-x86 qemu-utils debootstrap e2fsprogs)
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv python3-pip)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root bash "$repo/scripts/wait-for-apt.sh"
  as_root apt-get update -q
  as_root bash "$repo/scripts/wait-for-apt.sh"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# The test suite's toolchain (--tests): Quadlet, a Nix with lib.fileset, nixpkgs' lib.
if [ "$setup_tests" = 1 ]; then
  # Debian 13 ("trixie") packages, downloaded without changing the system: apt with lists of
  # its own for the trixie suite of the mirror this machine already uses; dpkg -x unpacks them.
  # The scratch directory has a name of its own: scripts that source this one (quickstart.sh)
  # keep their variables, and this trap removes only it.
  trixie_work=
  trixie_download() { # PACKAGE... → their .deb files in $trixie_work/debs
    if [ -z "$trixie_work" ]; then
      trixie_work=$(mktemp -d)
      trap 'rm -rf "$trixie_work"' EXIT
      uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
      mkdir -p "$trixie_work/lists/partial" "$trixie_work/debs"
      echo "deb $uri trixie main" >"$trixie_work/sources.list"
      apt_trixie=(-o "Dir::Etc::sourcelist=$trixie_work/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$trixie_work/lists" -o "Dir::State::status=/dev/null"
        -o "Debug::NoLocking=1")
      apt-get "${apt_trixie[@]}" update -q >/dev/null 2>&1
    fi
    (cd "$trixie_work/debs" && apt-get "${apt_trixie[@]}" download "$@" >/dev/null 2>&1)
  }

  if [ -x /usr/libexec/podman/quadlet ]; then
    quadlet=/usr/libexec/podman/quadlet
  else
    quadlet="$repo/.tools/quadlet"
    if [ ! -x "$quadlet" ]; then
      say "fetching Quadlet from Debian 13's podman package (Debian 12's podman has none)"
      trixie_download podman
      dpkg -x "$trixie_work"/debs/podman_*.deb "$trixie_work/podman"
      mkdir -p "$repo/.tools"
      install -m 0755 "$trixie_work/podman/usr/libexec/podman/quadlet" "$quadlet"
    fi
  fi
  "$quadlet" -version >/dev/null
  export DEVBOX_QUADLET="$quadlet"

  # A Nix with lib.fileset (builtins.readFileType, Nix >= 2.14), for the tests that replay what
  # the flake's builds see: Debian 13's nix-bin 2.26. Debian 12's is 2.8, and trixie's binary
  # needs trixie's glibc (GLIBC_2.38) and libraries, so on Debian 12 it is unpacked with the
  # shared libraries it links (glibc included) into .tools/nix/ and started through that glibc's
  # own loader (ld.so --library-path): nothing of the system changes.
  nix_has_fileset() { # NIX-INSTANTIATE → whether its version is at least 2.14
    local version
    version=$("$1" --version 2>/dev/null | awk '{print $NF}') || return 1
    [ -n "$version" ] && [ "$(printf '%s\n' 2.14 "$version" | sort -V | head -n 1)" = 2.14 ]
  }
  if nix_has_fileset nix-instantiate; then
    fileset_nix=$(command -v nix-instantiate)
  else
    fileset_nix="$repo/.tools/nix/bin/nix-instantiate"
    if ! nix_has_fileset "$fileset_nix" || [ ! -x "$repo/.tools/nix/bin/nix" ]; then
      say "fetching Nix 2.26 from Debian 13's nix-bin, with its libraries, into .tools/nix"
      trixie_download nix-bin
      # Every library package nix-bin depends on, directly or not (not its perl helpers).
      mapfile -t libraries < <(apt-cache "${apt_trixie[@]}" depends --recurse --no-recommends \
        --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances nix-bin |
        grep -E '^lib' | grep -vE -- '-perl$|^libperl|^libpam|^libsemanage|^libdebian-installer|^libnewt|^libslang|^libtextwrap' |
        sort -u)
      trixie_download "${libraries[@]}"
      rm -rf "$repo/.tools/nix"
      mkdir -p "$repo/.tools/nix/bin"
      for deb in "$trixie_work"/debs/nix-bin_*.deb "$trixie_work"/debs/lib*.deb; do
        dpkg -x "$deb" "$repo/.tools/nix/root"
      done
      for program in nix-instantiate nix; do
        cat >"$repo/.tools/nix/bin/$program" <<WRAPPER
#!/usr/bin/env bash
# Debian 13's $program (Nix 2.26), run by Debian 13's glibc loader with the libraries
# unpacked beside it (scripts/setup.sh).
root=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/../root" && pwd)
libs=\$root/usr/lib/x86_64-linux-gnu:\$root/lib/x86_64-linux-gnu
exec "\$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$libs" --argv0 $program \\
  "\$root/usr/bin/nix" "\$@"
WRAPPER
        chmod 0755 "$repo/.tools/nix/bin/$program"
      done
      nix_has_fileset "$fileset_nix"
    fi
  fi
  export DEVBOX_FILESET_NIX="$fileset_nix"

  # nixpkgs' lib for the tests that evaluate the Nix files: the shared copy beside the
  # repository (README, "Tests"), unless DEVBOX_NIXPKGS_LIB names another.
  if [ -z "${DEVBOX_NIXPKGS_LIB:-}" ] && [ -d "$repo/../shared/vendor/nixpkgs.lib/lib" ]; then
    DEVBOX_NIXPKGS_LIB=$(cd "$repo/../shared/vendor/nixpkgs.lib" && pwd)
    export DEVBOX_NIXPKGS_LIB
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the Python environment in .venv"
  python3 -m venv .venv
fi
# .devbox-installed: devbox with the test and lint tools; .devbox-generator-installed: devbox
# alone (the quick start). Either is redone when the package's or the pins' file is newer.
installed_after() { # STAMP → whether STAMP is newer than what the installation follows
  [ -e "$1" ] && [ ! generator/pyproject.toml -nt "$1" ] && [ ! scripts/constraints.txt -nt "$1" ]
}
if [ -L .venv ]; then
  # Another checkout's environment (a copy that shares it, as the tests' copies do): it is
  # used as it is, never installed into, which would point its devbox at this copy.
  if ! .venv/bin/python -c 'import devbox' 2>/dev/null; then
    echo "setup.sh: the shared .venv has no devbox: run scripts/setup.sh where it lives" >&2
    exit 1
  fi
elif [ "$setup_tests" = 1 ]; then
  if ! .venv/bin/python -c 'import devbox, pytest, hypothesis, ruff' 2>/dev/null \
    || ! installed_after .venv/.devbox-installed; then
    say "installing devbox and the test tools into .venv"
    # setuptools too: the build system the flake declares (build-system), which the check in
    # Nix's sandbox builds the wheel with (tests/nix/sandbox/stdenv-phases.sh).
    .venv/bin/pip install -q --disable-pip-version-check -c scripts/constraints.txt \
      setuptools -e './generator[test,lint]'
    touch .venv/.devbox-installed
  fi
elif ! .venv/bin/python -c 'import devbox' 2>/dev/null \
  || { ! installed_after .venv/.devbox-installed \
    && ! installed_after .venv/.devbox-generator-installed; }; then
  say "installing devbox into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c scripts/constraints.txt -e ./generator
  touch .venv/.devbox-generator-installed
fi
