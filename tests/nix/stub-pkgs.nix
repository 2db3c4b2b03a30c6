# Stands for the package set of nixpkgs at the pin (74cc63f) in the evaluations of tests/nix:
# every package attribute the flake's devbox-ctl, the orchestrator module and the VM test name,
# with the meta nixpkgs gives it (licence, platforms; docs/nix-checked.md, "Stubbed packages",
# says where each was read), and nothing built. Like nixpkgs' check-meta, a package whose
# licence is unfree, or which is not available on the system, refuses to evaluate (its outPath
# throws) unless `config` allows it; and a derivation made from others (writeShellApplication,
# buildPythonApplication, a NixOS configuration) forces their outPaths, as a real .drv does.
#
#   import ./stub-pkgs.nix { inherit lib; system = "x86_64-linux"; config = { }; }
{
  lib,
  system ? "x86_64-linux",
  config ? { },
}:
let
  inherit (lib) licenses platforms;
  hostPlatform = lib.systems.elaborate system;

  allowUnfree = config.allowUnfree or false;
  allowUnfreePredicate = config.allowUnfreePredicate or (_: false);

  fakeHash = "00000000000000000000000000000000";

  # A derivation standing for pkgs.<attribute>. `inputs` are what it is built from: their
  # outPaths are forced with its own.
  package =
    attribute:
    {
      pname ? attribute,
      version ? null,
      license,
      platforms,
      mainProgram ? null,
      inputs ? [ ],
      extra ? { },
    }:
    let
      # Build helpers name their result without a version.
      name = if version == null then pname else "${pname}-${version}";
      meta = {
        inherit license platforms;
      }
      // lib.optionalAttrs (mainProgram != null) { inherit mainProgram; };
      licenses' = lib.toList license;
      unfree = lib.any (l: !(l.free or true)) licenses';
      self = {
        type = "derivation";
        inherit
          name
          pname
          version
          meta
          attribute
          ;
        outPath =
          if unfree && !(allowUnfree || allowUnfreePredicate self) then
            throw "Package ‘${name}’ (pkgs.${attribute}) has an unfree license (‘${lib.concatMapStringsSep ", " (l: l.shortName) licenses'}’), refusing to evaluate."
          else if !(lib.meta.availableOn hostPlatform self) then
            throw "Package ‘${name}’ (pkgs.${attribute}) is not available on the requested hostPlatform ${system}, refusing to evaluate."
          else
            builtins.deepSeq (map toString inputs) "/nix/store/${fakeHash}-${name}";
        outputs = [ "out" ];
        drvPath = self.outPath + ".drv";
      }
      // extra;
    in
    self;

  python3 = package "python3" {
    pname = "python3";
    version = "3.13";
    license = licenses.psfl;
    platforms = platforms.linux ++ platforms.darwin;
    extra = {
      pkgs = pythonPackages;
      sitePackages = "lib/python3.13/site-packages";
    };
  };

  pythonPackage =
    attribute: license:
    package attribute {
      inherit license;
      platforms = python3.meta.platforms;
    };

  pythonPackages = {
    # What mk-python-derivation.nix makes of its arguments: the check phase is run as the
    # installCheckPhase; the arguments are kept so a test can read them.
    buildPythonApplication =
      arguments:
      package arguments.pname {
        inherit (arguments) version;
        license = arguments.meta.license;
        platforms = arguments.meta.platforms or python3.meta.platforms;
        inherit (arguments.meta) mainProgram;
        inputs =
          arguments.build-system
          ++ arguments.dependencies
          ++ arguments.nativeCheckInputs
          ++ [ python3 ];
        extra = {
          inherit arguments;
        };
      };
    setuptools = pythonPackage "setuptools" licenses.mit;
    click = pythonPackage "click" licenses.bsd3;
    pydantic = pythonPackage "pydantic" licenses.mit;
    jinja2 = pythonPackage "jinja2" licenses.bsd3;
    deepdiff = pythonPackage "deepdiff" licenses.mit;
    pytest = pythonPackage "pytest" licenses.mit;
    hypothesis = pythonPackage "hypothesis" licenses.mpl20;
    pytest-xdist = pythonPackage "pytest-xdist" licenses.mit;
    mypy = pythonPackage "mypy" licenses.mit;
    ruff = pythonPackage "ruff" licenses.mit;
  };
in
{
  inherit lib config python3;
  stdenv = {
    inherit hostPlatform;
  };
  python3Packages = pythonPackages;

  _1password-cli = package "_1password-cli" {
    pname = "1password-cli";
    version = "2.33.0";
    license = licenses.unfree;
    platforms = [
      "aarch64-linux"
      "i686-linux"
      "x86_64-linux"
      "aarch64-darwin"
      "x86_64-darwin"
    ];
    mainProgram = "op";
  };
  busybox = package "busybox" {
    license = licenses.gpl2Only;
    platforms = platforms.linux;
  };
  coreutils = package "coreutils" {
    license = licenses.gpl3Plus;
    platforms = platforms.unix;
  };
  git = package "git" {
    license = licenses.gpl2Only;
    platforms = platforms.all;
    mainProgram = "git";
  };
  colmena = package "colmena" {
    version = "0.4.0";
    license = licenses.mit;
    platforms = platforms.linux ++ platforms.darwin;
    mainProgram = "colmena";
  };
  openssh = package "openssh" {
    license = licenses.bsd2;
    platforms = platforms.unix ++ platforms.windows;
    mainProgram = "ssh";
  };
  gnutar = package "gnutar" {
    license = licenses.gpl3Plus;
    platforms = platforms.all;
  };
  gzip = package "gzip" {
    license = licenses.gpl3Plus;
    platforms = platforms.all;
  };
  jq = package "jq" {
    license = licenses.mit;
    platforms = platforms.unix;
  };
  nix = package "nix" {
    license = licenses.lgpl21Plus;
    platforms = platforms.unix;
  };
  podman = package "podman" {
    license = licenses.asl20;
    platforms = platforms.unix;
    mainProgram = "podman";
  };
  shellcheck = package "shellcheck" {
    license = licenses.gpl3Plus;
    platforms = platforms.all;
  };
  util-linux = package "util-linux" {
    license = [
      licenses.gpl2Only
      licenses.gpl2Plus
      licenses.gpl3Plus
      licenses.lgpl21Plus
      licenses.bsd3
      licenses.bsdOriginalUC
      licenses.publicDomain
    ];
    platforms = platforms.linux;
  };

  # Build helpers: a derivation of their inputs, with the arguments kept for the tests.
  writeShellApplication =
    arguments:
    package arguments.name {
      license = licenses.free;
      platforms = platforms.all;
      mainProgram = arguments.name;
      inputs = arguments.runtimeInputs or [ ];
      extra = {
        inherit arguments;
        inherit (arguments) text;
        runtimeInputs = arguments.runtimeInputs or [ ];
      };
    };
  linkFarm =
    name: entries:
    package name {
      license = licenses.free;
      platforms = platforms.all;
      inputs = map (entry: entry.path) entries;
      extra = {
        inherit entries;
      };
    };
  buildEnv =
    arguments:
    package arguments.name {
      license = licenses.free;
      platforms = platforms.all;
      inputs = arguments.paths;
    };
  dockerTools.buildImage =
    arguments:
    package "docker-image-${arguments.name}.tar.gz" {
      license = licenses.free;
      platforms = platforms.linux;
      inputs = [ arguments.copyToRoot ];
    };
  dockerTools.buildLayeredImage =
    arguments:
    package "${arguments.name}.tar.gz" {
      license = licenses.free;
      platforms = platforms.linux;
      inputs = arguments.contents or [ ];
      extra = {
        includeStorePaths = arguments.includeStorePaths or true;
      };
    };
  # The test itself, unbuilt: tests/nix/eval-vm-test.nix evaluates its nodes as
  # nixos/lib/testing does.
  testers.runNixOSTest = test: test;
}
