# The programs the orchestrator module runs, each made from the shell script of the same name
# beside this file: the script holds the logic and is tested against the real programs it
# calls (tests/nixos_scripts/); this file only says which packages go on its PATH.
{
  writeShellApplication,
  coreutils,
  podman,
}:
{
  # load-image.sh: the dev-container image into the owner's rootless storage.
  loadImage = writeShellApplication {
    name = "devbox-load-image";
    runtimeInputs = [
      podman
      coreutils
    ];
    text = builtins.readFile ./load-image.sh;
  };
}
