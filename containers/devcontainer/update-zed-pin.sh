#!/usr/bin/env bash
# Pin the Zed remote server of the dev-container image to VERSION (the version
# `zed --version` prints on the team's clients, e.g. 0.212.4), or back to the
# zed-editor of the pinned nixpkgs with --nixpkgs.
#
# It asks nix-prefetch-url for the hash of Zed's release file
# zed-remote-server-linux-x86_64.gz (the image is built for x86_64-linux) and writes zed-remote-server.json beside
# this script. Rebuild and reload the image afterwards (docs/image.md).
set -euo pipefail

usage() {
	echo "usage: $0 VERSION" >&2
	echo "       $0 --nixpkgs" >&2
	exit 2
}

pin_file=$(dirname "$0")/zed-remote-server.json
comment="Pin of the Zed remote server in the image. null: the zed-editor of the pinned nixpkgs. Set with ./update-zed-pin.sh VERSION (docs/image.md)."

write_pin() {
	local version=$1 sha256=$2 tmp
	tmp=$(mktemp "$pin_file.XXXXXX")
	jq -n --arg comment "$comment" --argjson version "$version" --argjson sha256 "$sha256" \
		'{comment: $comment, version: $version, sha256: $sha256}' >"$tmp"
	mv "$tmp" "$pin_file"
}

[[ $# -eq 1 ]] || usage
case $1 in
--nixpkgs)
	write_pin null null
	echo "zed-remote-server.json: using nixpkgs' zed-editor"
	;;
-*) usage ;;
*)
	version=${1#v}
	[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
		echo "error: '$1' is not a Zed version such as 0.212.4" >&2
		exit 2
	}
	url="https://github.com/zed-industries/zed/releases/download/v$version/zed-remote-server-linux-x86_64.gz"
	sha256=$(nix-prefetch-url --type sha256 "$url")
	write_pin "\"$version\"" "\"$sha256\""
	echo "zed-remote-server.json: Zed remote server $version ($sha256)"
	;;
esac
