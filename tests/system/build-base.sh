#!/usr/bin/env bash
# Builds (or finds in the cache) the Debian 13 guest that stands in for the NixOS host, and
# prints the cache directory holding base.img (ext4, the root file system), vmlinuz and
# initrd.img. The cache lives outside the repository,
#   ${XDG_CACHE_HOME:-~/.cache}/devbox/vm/<key>/
# where <key> hashes packages.txt and the scripts that build the image, so a change to any of
# them builds a new image and an unchanged one is reused. Nothing of devbox is in it: the
# source is copied in at test time (tests/system/run.py), so code changes keep the cache.
# Needs root (debootstrap, chroot), debootstrap and e2fsprogs. Prints progress to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf '%s build-base: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

key=$(cat "$here/packages.txt" "$here/build-base.sh" "$here/guest/setup-base.sh" \
	"$here/guest/image-rootfs.py" | sha256sum | cut -c1-16)
cache_root=${DEVBOX_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devbox/vm}
cache=$cache_root/$key
if [[ -f $cache/complete ]]; then
	say "reusing $cache"
	echo "$cache"
	exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if [[ -f $cache/complete ]]; then
	echo "$cache"
	exit 0
fi

work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n $uri ]] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages.txt" | paste -sd,)
# Downloaded packages are kept between builds (not part of the key: a package is a package).
debs=$cache_root/debs
mkdir -p "$debs"

say "debootstrap trixie from $uri (minbase + $(tr ',' '\n' <<<"$packages" | wc -l) packages)"
debootstrap --variant=minbase --cache-dir="$debs" --include="$packages" trixie "$rootfs" "$uri" \
	>"$work/debootstrap.log" 2>&1 || {
	tail -n 20 "$work/debootstrap.log" >&2
	grep -B2 -A6 'error processing' "$rootfs/debootstrap/debootstrap.log" 2>/dev/null | head -n 40 >&2 || true
	say "debootstrap failed"
	exit 1
}

say "configuring the guest (guest/setup-base.sh)"
cp "$here/guest/image-rootfs.py" "$rootfs/tmp/image-rootfs.py"
cp "$here/guest/setup-base.sh" "$rootfs/tmp/setup-base.sh"
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
	/bin/bash /tmp/setup-base.sh >&2
rm -f "$rootfs/tmp/image-rootfs.py" "$rootfs/tmp/setup-base.sh"

mkdir -p "$work/out"
cp "$rootfs"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$rootfs"/boot/initrd.img-* "$work/out/initrd.img"
say "making the ext4 image ($(du -sm "$rootfs" | cut -f1) MiB of files)"
# 12G (sparse): room for the daemon's min-free (5 GiB, services.devbox.nix.minFree) beside the
# images and volumes, so that no build of step 9 starts a collection of its own.
mkfs.ext4 -q -F -L devbox-root -d "$rootfs" "$work/out/base.img" 12G
rm -rf "$cache"
mv "$work/out" "$cache"
touch "$cache/complete"
say "cached in $cache"
echo "$cache"
