# Evaluates the dev-container image's package (containers/devcontainer/default.nix) with
# nixpkgs' lib and stand-ins for its packages and build helpers, and returns what it gives
# dockerTools.buildLayeredImage: the image configuration, the names of its contents, the /etc
# files and the scripts it runs. Nothing is built. Used by test_image_package.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-image.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{
  lib,
  withGit ? true,
}:
let
  fakeStore = "/nix/store/00000000000000000000000000000000";
  stub = name: {
    type = "derivation";
    inherit name;
    outPath = "${fakeStore}-${name}";
  };
  # Arguments of a build helper, kept for the test beside the stand-in it returns.
  helper = name: arguments: stub name // { inherit arguments; };
  packages = lib.genAttrs [
    "bashInteractive"
    "coreutils"
    "findutils"
    "gnugrep"
    "gnused"
    "gawk"
    "gnutar"
    "gzip"
    "xz"
    "procps"
    "which"
    "openssh"
    "curl"
    "jq"
    "nix"
    "iana-etc"
    "tzdata"
    "tini"
    "tailscale"
    "code-server"
    "syncthing"
    "devbox-ctl"
  ] stub;
  image = import ../../containers/devcontainer/default.nix (
    packages
    // {
      inherit lib;
      dockerTools = {
        buildLayeredImage = arguments: arguments;
        fakeNss.override = helper "fake-nss";
        binSh = stub "bin-sh";
        usrBinEnv = stub "usr-bin-env";
        caCertificates = stub "ca-certificates";
      };
      linkFarm = helper;
      writeText = name: text: stub name // { inherit text; };
      writeShellApplication = arguments: helper arguments.name arguments;
      replaceVars = source: variables: stub "profile.sh" // { inherit source variables; };
      glibcLocales = stub "glibc-locales-all" // {
        override = arguments: stub "glibc-locales-${toString (builtins.length arguments.locales)}";
      };
      callPackage = path: _: stub "zed-remote-server";
      toolkit = [ (stub "ripgrep") ];
      sessionVariables.EDITOR = "nvim";
    }
    // lib.optionalAttrs withGit {
      gitConfig = "/hm/git/config";
      gitIgnore = "/hm/git/ignore";
    }
  );
  etc = lib.findFirst (content: content.name == "devbox-devcontainer-etc") null image.contents;
  entrypoint = lib.findFirst (
    content: content.name == "devbox-entrypoint"
  ) null image.contents;
in
{
  inherit (image)
    name
    tag
    config
    fakeRootCommands
    ;
  contents = map (content: content.name) image.contents;
  storeContents = map (content: content.name) image.storeContents;
  # The image each owner loads when the containers mount the host's store: the same arguments,
  # store paths left out.
  hostStoreImage = {
    inherit (image.hostStoreImage) includeStorePaths;
    sameArguments =
      builtins.toJSON (builtins.removeAttrs image.hostStoreImage [ "includeStorePaths" ])
      == builtins.toJSON (
        builtins.removeAttrs image [
          "storeContents"
          "hostStoreImage"
        ]
      );
  };
  etc = map (entry: {
    inherit (entry) name;
    path = toString entry.path;
    text = entry.path.text or null;
  }) etc.arguments;
  profileVariables = lib.mapAttrs (_: toString) (
    (lib.findFirst (entry: entry.name == "etc/profile") null etc.arguments).path.variables
  );
  entrypoint = {
    inherit (entrypoint.arguments) text;
    runtimeInputs = map (package: package.name) entrypoint.arguments.runtimeInputs;
  };
}
