# The dev-container image: everything of docs/image.md in one layered image.
#
# Layering: buildLayeredImage puts every store path of the closure in a layer
# of its own (the most referenced paths first, up to maxLayers, whose default
# of 100 is left alone; whatever does not fit shares the last layer). That is
# what gives the caching: a rebuild after a change to, say, devbox-ctl changes
# only the layers of the store paths that changed, and podman already has all
# the others. `contents` does not make layers: all of it is merged into the
# one customisation layer on top (symlinks into the store, /etc, /tmp, the
# home), so grouping packages into buildEnvs would gain nothing.
{
  lib,
  dockerTools,
  linkFarm,
  writeText,
  writeShellApplication,
  replaceVars,
  bashInteractive,
  coreutils,
  findutils,
  gnugrep,
  gnused,
  gawk,
  gnutar,
  gzip,
  xz,
  procps,
  which,
  openssh,
  curl,
  jq,
  nix,
  iana-etc,
  tzdata,
  glibcLocales,
  tini,
  tailscale,
  code-server,
  syncthing,
  callPackage,
  # From the flake: the devbox-ctl package (the activity monitor and
  # `devbox-ctl keepalive` inside the container) and what toolkit.nix reads
  # from the Home Manager modules.
  devbox-ctl,
  toolkit,
  gitConfig ? null,
  gitIgnore ? null,
  sessionVariables ? { },
  zedRemoteServer ? callPackage ./zed-remote-server.nix { },
}:
let
  uid = 1000;
  gid = 1000;
  home = "/home/dev";

  # Two locales instead of glibc's few hundred megabytes of all of them (locales.nix).
  locales = import ./locales.nix { inherit glibcLocales; };
  localeArchive = "${locales}/lib/locale/locale-archive";
  tzdir = "${tzdata}/share/zoneinfo";

  # /etc/passwd and /etc/group with the user dev, from nixpkgs' fake NSS
  # (root and nobody included), so that nothing has to merge files into /etc.
  nss = dockerTools.fakeNss.override {
    extraPasswdLines = [ "dev:x:${toString uid}:${toString gid}:devbox:${home}:/bin/bash" ];
    extraGroupLines = [ "dev:x:${toString gid}:" ];
  };

  profile = replaceVars ./profile.sh {
    inherit localeArchive tzdir;
    sessionVariables = lib.concatStringsSep "\n" (
      lib.mapAttrsToList (
        name: value: "export ${name}=${lib.escapeShellArg (toString value)}"
      ) sessionVariables
    );
  };

  systemGitConfig = writeText "gitconfig" (
    import ./gitconfig.nix { inherit lib gitConfig gitIgnore; }
  );

  etc = linkFarm "devbox-devcontainer-etc" (
    [
      {
        name = "etc/profile";
        path = profile;
      }
      {
        name = "etc/bashrc";
        path = ./bashrc.sh;
      }
      {
        name = "etc/nix/nix.conf";
        path = ./nix.conf;
      }
    ]
    ++ lib.optional (gitConfig != null || gitIgnore != null) {
      name = "etc/gitconfig";
      path = systemGitConfig;
    }
  );

  contents = [
    nss
    dockerTools.binSh
    dockerTools.usrBinEnv
    dockerTools.caCertificates
    iana-etc
    etc

    bashInteractive
    coreutils
    findutils
    gnugrep
    gnused
    gawk
    gnutar
    gzip
    xz
    procps
    which
    openssh
    # The client of the host's daemon: the unit mounts the store and the socket.
    nix

    tini
    tailscale
    code-server
    syncthing
    devbox-ctl
    entrypoint
  ]
  ++ toolkit;

  entrypoint = writeShellApplication {
    name = "devbox-entrypoint";
    runtimeInputs = [
      coreutils
      gnugrep
      curl
      jq
      tailscale
      code-server
      syncthing
      devbox-ctl
    ];
    # writeShellApplication writes its own #! line and shell options.
    text = lib.removePrefix "#!/usr/bin/env bash\n" (builtins.readFile ./entrypoint.sh);
  };

  # The image: dockerTools.buildLayeredImage takes the arguments of streamLayeredImage.
  arguments = {
    name = "devbox/devcontainer";
    tag = "latest";

    inherit contents;

    # customise-root.sh runs in the customisation layer's root (relative paths);
    # fakeroot makes the ownership stick in the layer without root at build time.
    fakeRootCommands = ''
      bash ${./customise-root.sh} ${toString uid} ${toString gid} ${home}
    '';

    config = {
      # tini reaps orphans and passes signals to the entrypoint, which stops
      # the services (the unit sets RunInit=false: this is the only init).
      Entrypoint = [
        "${tini}/bin/tini"
        "--"
        "${entrypoint}/bin/devbox-entrypoint"
      ];
      # Unprivileged, tailscaled included: as root, Tailscale SSH would start
      # sessions through login/su, which fail without PAM.
      User = "${toString uid}:${toString gid}";
      WorkingDir = home;
      Volumes = {
        ${home} = { };
      };
      Env = [
        "HOME=${home}"
        "USER=dev"
        "LOGNAME=dev"
        "SHELL=/bin/bash"
        "PATH=${home}/.local/bin:${home}/.nix-profile/bin:/bin"
        "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
        "NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
        "LANG=C.UTF-8"
        "LOCALE_ARCHIVE=${localeArchive}"
        "TZDIR=${tzdir}"
        "DEVBOX_ZED_SERVER_DIR=${zedRemoteServer}/bin"
      ];
      Labels = {
        "org.opencontainers.image.title" = "devbox dev container";
        "org.opencontainers.image.description" =
          "Tailscale SSH, code-server, the Zed remote server and optional Syncthing, as the user dev";
      };
    };
  };
in
# The image for use anywhere: every store path it refers to in a layer of its own.
dockerTools.buildLayeredImage arguments
// {
  # With the host's daemon (users.nix nixDaemon, the default) the containers mount the host's
  # /nix/store over the image's. The NixOS module keeps these paths, and everything they refer to,
  # in the host's store (system.extraDependencies) ...
  storeContents = contents ++ [
    zedRemoteServer
    locales
    tzdata
  ];
  # ... and loads into each owner's storage this image instead: the same configuration and
  # customisation layer (the links into the store, /etc, the home), without the store paths'
  # layers, which the mount hides anyway. A few hundred KiB per owner in place of the whole
  # closure, and a new image is loaded in seconds (docs/image.md, "Where the image is stored").
  hostStoreImage = dockerTools.buildLayeredImage (arguments // { includeStorePaths = false; });
}
