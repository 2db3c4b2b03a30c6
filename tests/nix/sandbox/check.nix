# The flake's check (checks.x86_64-linux.pytest-nix: the devbox-ctl package, whose check phase
# runs the whole fast suite) built in Nix's own sandbox, as buildPythonApplication builds it:
# the flake's real source set (lib.fileset.toSource, store modes), sourceRoot made writable,
# the wheel built and installed into $out, then the flake's own check phase with only the
# declared check inputs on PATH and PYTHONPATH (stdenv-phases.sh does the phases).
#
# The packages are copies of this machine's programs in the store (tests/nix_sandbox.py):
# toolsFile names them, attribute → store path, with stdenv's own tools and the Python
# version the copies have.
#
#   nix build --store DIR --file tests/nix/sandbox/check.nix \
#     --arg lib 'import <nixpkgs.lib>/lib' --arg toolsFile /path/to/tools.json
{ lib, toolsFile }:
let
  check = import ../eval-check.nix { inherit lib; };
  inherit (check) arguments;
  given = lib.importJSON toolsFile;
  # add-path records no references: every copied path is named, so the sandbox holds it.
  tools = lib.mapAttrs (_: builtins.storePath) given.paths;
  attribute = input: input.attribute;
  isPython = name: builtins.elem name check.pythonPackages;
  checkInputs = map attribute arguments.nativeCheckInputs;
  programs = builtins.filter (name: !isPython name) checkInputs;
  pythonInputs = map attribute (arguments.dependencies ++ arguments.build-system) ++ builtins.filter isPython checkInputs;
  missing = builtins.filter (name: !(tools ? ${name})) (given.stdenv ++ programs);
  # The stubs' store paths and Python version in the flake's strings, for the copies'.
  stubbed = [
    check.nixpkgs
    check.quadlet
    check.sitePackages
  ];
  real = [
    tools.nixpkgs
    "${tools.podman-quadlet}/libexec/podman/quadlet"
    given.sitePackages
  ];
  replace = builtins.replaceStrings stubbed real;
  env = lib.mapAttrs (_: replace) arguments.env;
in
assert lib.assertMsg check.checkIsThePackage "checks.pytest-nix is no longer the package";
assert lib.assertMsg (missing == [ ]) "no copy in the store for: ${toString missing}";
assert lib.assertMsg (lib.all (name: builtins.elem name given.pythonDistributions) pythonInputs)
  "Python packages without a copy: ${toString (lib.subtractLists given.pythonDistributions pythonInputs)}";
derivation (
  env
  // {
    name = "${arguments.pname}-${arguments.version}";
    system = "x86_64-linux";
    builder = "${tools.bash}/bin/bash";
    args = [
      "-e"
      ./stdenv-phases.sh
    ];
    inherit (arguments) src sourceRoot;
    checkPhase = replace arguments.checkPhase;
    pythonImportsCheck = toString arguments.pythonImportsCheck;
    inherit (given) sitePackages;
    PATH = lib.makeBinPath (
      map (name: tools.${name}) (given.stdenv ++ programs ++ [ "python3-check-packages" "python3" ])
    );
    # What nixpkgs' wrapper of the package's programs adds to their path: the run-time
    # dependencies only (wrapPythonPrograms).
    runtimeSitePackages = "${tools.python3-runtime-packages}/${given.sitePackages}";
    # pip, for the build and install phases only (nixpkgs' pypa hooks bring their own).
    buildToolsSitePackages = "${tools.python3-build-tools}/${given.sitePackages}";
    # What nixpkgs' Python setup hook puts there: the dependencies' site-packages.
    PYTHONPATH = "${tools.python3-check-packages}/${given.sitePackages}";
    copiedStorePaths = builtins.attrValues tools;
  }
)
