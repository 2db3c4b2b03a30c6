#!/usr/bin/env bash
# Set up everything devbox's generator and tests need, on Debian 12 or 13. Safe to run twice:
# each step checks first and does nothing when its part is already there.
#   - Debian packages: Nix (nix-instantiate reads users.nix), podman and runc (volumes,
#     secrets, containers in the tests), shellcheck, busybox-static (a tiny test image), git,
#     jq (the image's entrypoint uses it; its tests run it); qemu-system-x86, qemu-utils,
#     debootstrap and e2fsprogs for the host test in a virtual machine (tests/system/)
#   - Quadlet, podman's unit generator: Debian 13's podman has it; on Debian 12 (podman 4.3,
#     no Quadlet) the binary is taken from Debian 13's podman package into .tools/quadlet
#   - the Python environment in .venv, from generator/ with the pinned versions of
#     scripts/constraints.txt
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

say() { printf '==> %s\n' "$*"; }

packages=(nix-bin podman runc shellcheck busybox-static git jq ca-certificates
  qemu-system-x86 qemu-utils debootstrap e2fsprogs)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv python3-pip)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if [ -x /usr/libexec/podman/quadlet ]; then
  quadlet=/usr/libexec/podman/quadlet
else
  quadlet="$repo/.tools/quadlet"
  if [ ! -x "$quadlet" ]; then
    say "fetching Quadlet from Debian 13's podman package (Debian 12's podman has none)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    mkdir -p "$work/lists/partial"
    echo "deb $uri trixie main" >"$work/sources.list"
    apt_trixie=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$work/lists" -o "Debug::NoLocking=1")
    apt-get "${apt_trixie[@]}" update -q >/dev/null
    (cd "$work" && apt-get "${apt_trixie[@]}" download podman >/dev/null 2>&1)
    dpkg -x "$work"/podman_*.deb "$work/root"
    mkdir -p "$repo/.tools"
    install -m 0755 "$work/root/usr/libexec/podman/quadlet" "$quadlet"
  fi
fi
"$quadlet" -version >/dev/null
export DEVBOX_QUADLET="$quadlet"

if [ ! -x .venv/bin/python ]; then
  say "creating the Python environment in .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import devbox, pytest, hypothesis, ruff' 2>/dev/null \
  || [ generator/pyproject.toml -nt .venv/.devbox-installed ] \
  || [ scripts/constraints.txt -nt .venv/.devbox-installed ]; then
  say "installing devbox and the test tools into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c scripts/constraints.txt \
    -e './generator[test,lint]'
  touch .venv/.devbox-installed
fi
