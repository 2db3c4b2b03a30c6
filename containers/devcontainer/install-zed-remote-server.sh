#!/usr/bin/env bash
# Install Zed's release build of the remote server (zed-remote-server-linux-<arch>.gz) under
# the name Zed clients look for, for zed-remote-server.nix (its installPhase):
#
#   install-zed-remote-server.sh ARCHIVE VERSION BINDIR
#
# A client of the stable channel runs ~/.zed_server/zed-remote-server-stable-<its version>,
# and its version carries the channel as build metadata: "<VERSION>+stable", the name the
# pinned nixpkgs' zed-editor gives its own remote_server output too (docs/nix-checked.md).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 ARCHIVE VERSION BINDIR" >&2
  exit 2
fi
archive=$1
version=$2
bindir=$3
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: '$version' is not a Zed version such as 0.212.4" >&2
  exit 2
fi

server=$bindir/zed-remote-server-stable-$version+stable
mkdir -p "$bindir"
gzip -dc "$archive" >"$server.tmp"
chmod 0755 "$server.tmp"
mv "$server.tmp" "$server"
