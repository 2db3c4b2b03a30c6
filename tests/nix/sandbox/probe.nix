# A build that tries, in Nix's sandbox, what a NixOS builder may not do, and writes down what
# happened (probe.sh); tests/nix/test_check_sandbox.py reads it. Its input `src` is a store
# path with a file and a folder, to try the store's modes on.
#
#   nix build --store DIR --file tests/nix/sandbox/probe.nix --arg lib … --arg toolsFile …
#     --arg src /path/to/a/folder
{
  lib,
  toolsFile,
  src,
}:
let
  tools = lib.mapAttrs (_: builtins.storePath) (lib.importJSON toolsFile).paths;
in
derivation {
  name = "sandbox-probe";
  system = "x86_64-linux";
  builder = "${tools.bash}/bin/bash";
  args = [ ./probe.sh ];
  inherit src;
  PATH = lib.makeBinPath [ tools.coreutils ];
  copiedStorePaths = builtins.attrValues tools;
}
