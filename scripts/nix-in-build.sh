# shellcheck shell=bash
# Sourced inside a Nix build (the flake's pytest-nix and generated-up-to-date checks): gives
# Nix a private store and state under a fresh directory, as nixpkgs' own lib tests do
# (lib/tests/test-with-nix.nix), so that nix-instantiate can evaluate users.nix and the modules
# in the sandbox, where /nix/var is not writable and HOME is /homeless-shelter.
TEST_ROOT=$(mktemp -d)
export TEST_ROOT
export HOME=$TEST_ROOT/home
mkdir -p "$HOME"
export NIX_BUILD_HOOK=
export NIX_CONF_DIR=$TEST_ROOT/etc
export NIX_LOCALSTATE_DIR=$TEST_ROOT/var
export NIX_LOG_DIR=$TEST_ROOT/var/log/nix
export NIX_STATE_DIR=$TEST_ROOT/var/nix
export NIX_STORE_DIR=$TEST_ROOT/store
export PAGER=cat
