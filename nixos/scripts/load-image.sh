#!/usr/bin/env bash
# Load the dev-container image into the calling user's rootless podman storage and tag it with
# the name the units run (they use Pull=never), so the archive may carry any name.
#
#   load-image.sh ARCHIVE REFERENCE
#
# ARCHIVE is what dockerTools builds: an image archive (buildImage, buildLayeredImage), or an
# executable that writes one to stdout (streamLayeredImage). REFERENCE is the name the units
# run, e.g. localhost/devbox/devcontainer:latest. The devbox-image-<user> unit of
# nixos/orchestrator.nix runs it as the owner with HOME and XDG_RUNTIME_DIR set.
#
# A stamp in the owner's state directory records which archive gave which image id, so an
# unchanged image is not loaded again on every boot, and a deleted or retagged one is.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 ARCHIVE REFERENCE" >&2
  exit 2
fi
archive=$1
reference=$2
stamp_dir=${XDG_STATE_HOME:-$HOME/.local/state}/devbox
stamp=$stamp_dir/image

image_id() {
  podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
}

current=$(image_id "$reference")
if [[ -n $current && -f $stamp && $(<"$stamp") == "$archive $current" ]]; then
  echo "$reference is already loaded from $archive"
  exit 0
fi

echo "loading $archive as $reference"
if [[ -f $archive && -x $archive ]]; then
  output=$("$archive" | podman load --quiet)
else
  output=$(podman load --quiet --input "$archive")
fi

# podman load prints one line per name of the loaded image, "Loaded image: NAME" (podman 4
# and 5, cmd/podman/images/load.go); the first name is the one to tag.
loaded=
while IFS= read -r line; do
  if [[ $line == "Loaded image: "* ]]; then
    loaded=${line#"Loaded image: "}
    break
  fi
done <<<"$output"
if [[ -z $loaded ]]; then
  echo "podman load named no image; it printed: $output" >&2
  exit 1
fi
podman tag "$loaded" "$reference"
new=$(image_id "$reference")

mkdir -p "$stamp_dir"
printf '%s %s\n' "$archive" "$new" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"

# Free the space of the images this one replaces. An image a container still uses is refused by
# podman rmi (no --force) and stays until a later load.
for repository in "${loaded%:*}" "${reference%:*}"; do
  podman images --no-trunc --noheading --format '{{.ID}}' --filter "reference=$repository" |
    while read -r id; do
      if [[ $id != "$new" && $id != "sha256:$new" ]]; then
        podman rmi "$id" >/dev/null 2>&1 || echo "keeping $id: a container still uses it"
      fi
    done
done
