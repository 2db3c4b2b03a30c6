# The profile the dev-container image is built from: the whole devbox
# toolkit. Workstations may import it too, to get exactly what the containers
# have.
{ lib, ... }:
{
  imports = [
    ./cli.nix
    ./dev.nix
    ./git.nix
  ];

  devbox = {
    cli.enable = lib.mkDefault true;
    dev.enable = lib.mkDefault true;
    git.enable = lib.mkDefault true;
  };
}
