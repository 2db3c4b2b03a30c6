#!/usr/bin/env bash
# The folders of the image's customisation layer that need a mode or an owner, run by
# dockerTools.buildLayeredImage (fakeRootCommands, under fakeroot) in that layer's root:
#
#   customise-root.sh UID GID HOME
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 UID GID HOME" >&2
  exit 2
fi
uid=$1
gid=$2
home=$3

mkdir -p ./tmp ./var/tmp ".$home" ./var/run/tailscale
chmod 1777 ./tmp ./var/tmp
# The home is the mount point of the volume; a new volume copies its owner.
chown "$uid:$gid" ".$home"
# tailscaled's socket, where the tailscale CLI looks for it by default.
chown "$uid:$gid" ./var/run/tailscale
