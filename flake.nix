{
  description = "devbox: self-hosted development containers for a small team, declared in Nix";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    home-manager = {
      url = "github:nix-community/home-manager/release-26.05";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
    }:
    let
      inherit (nixpkgs) lib;
      inherit (lib) fileset;

      # devbox-ctl, its dev shell and the Home Manager modules work wherever Nix does (the
      # modules on macOS too); the image and the orchestrator on every Linux system; the checks
      # run on x86_64-linux.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      linux = "x86_64-linux";
      pkgsLinux = nixpkgs.legacyPackages.${linux};

      # What the Python test suite reads: the package, its tests, the example, and the files
      # the tests check (every .nix and shell file, the entrypoint, the NixOS module, and the
      # docs the tests hold the code to: docs/tools-checked.md's flags, docs/fleet.md's layouts).
      testedSource = fileset.toSource {
        root = ./.;
        fileset = fileset.unions [
          ./generator
          ./tests
          ./bench
          ./examples
          ./containers
          ./home
          ./nixos
          ./flake.nix
          ./flake.lock
          ./pytest.ini
          ./ruff.toml
          ./docs
          (fileset.maybeMissing ./scripts)
          (fileset.maybeMissing ./.ci)
        ];
      };

      exampleSource = fileset.toSource {
        root = ./.;
        fileset = ./examples;
      };

      # The project's own Nix, Python and shell files. A `path:` flake reference (or a dirty
      # tree's untracked files) brings what git ignores too: the Python environment, the tools
      # the quick start fetches and what builds leave are not the project's to format.
      notProjectFiles = fileset.unions (
        map fileset.maybeMissing [
          ./.venv
          ./.tools
          ./build
          ./result
          ./generator/build
          ./generator/dist
          ./.mypy_cache
          ./.ruff_cache
          ./.pytest_cache
          ./.hypothesis
        ]
      );
      formattedSource = fileset.toSource {
        root = ./.;
        fileset = fileset.difference (fileset.unions [
          (fileset.fileFilter (file: file.hasExt "nix" || file.hasExt "py" || file.hasExt "sh") ./.)
          ./ruff.toml
          (fileset.maybeMissing ./scripts)
          (fileset.maybeMissing ./.ci)
        ]) notProjectFiles;
      };

      # podman's Quadlet generator: `make install.bin` installs it under libexec/podman.
      quadletOf = pkgs: "${pkgs.podman}/libexec/podman/quadlet";

      pyproject = lib.importTOML ./generator/pyproject.toml;
      # The Python packages of the project, listed once, in generator/pyproject.toml: a
      # requirement such as "pydantic>=2.7" names the nixpkgs attribute python3.pkgs.pydantic.
      requirementName =
        requirement: builtins.head (builtins.match "([A-Za-z0-9_.-]+).*" requirement);
      pythonPackages = ps: map (requirement: ps.${requirementName requirement});
      extras = pyproject.project.optional-dependencies;
      runtimeDependencies = ps: pythonPackages ps pyproject.project.dependencies;
      testDependencies = ps: pythonPackages ps extras.test;
      lintDependencies = ps: pythonPackages ps extras.lint;

      # The generator and devbox-ctl. Its check phase runs CI's test suite (pytest-nix).
      mkDevboxCtl =
        pkgs:
        let
          python = pkgs.python3;
          ps = python.pkgs;
        in
        ps.buildPythonApplication {
          pname = pyproject.project.name;
          inherit (pyproject.project) version;
          pyproject = true;

          src = testedSource;
          # The Python project is generator/; the tests run from the repository root.
          sourceRoot = "${testedSource.name}/generator";

          build-system = [ ps.setuptools ];
          dependencies = runtimeDependencies ps;

          # What the tests run besides Python: Nix evaluates users.nix and the modules, jq
          # and shellcheck check the image's scripts, git makes the repositories the
          # lifecycle tests inspect.
          nativeCheckInputs = testDependencies ps ++ [
            pkgs.nix
            pkgs.jq
            pkgs.shellcheck
            pkgs.git
          ];

          env = {
            DEVBOX_NIXPKGS_LIB = "${nixpkgs}";
          }
          // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
            DEVBOX_QUADLET = quadletOf pkgs;
          };

          # The test suite CI runs (scripts/check.sh's pytest), from the repository root, with
          # the installed package; scripts/nix-in-build.sh gives Nix a private store. Tests
          # whose tool is missing here (a real podman, root) skip. No lint: ruff and mypy run
          # in CI at the versions of scripts/constraints.txt, which the code is kept clean
          # against; nixpkgs' are other versions, and a linter's new rule must never fail the
          # package every host builds.
          checkPhase = ''
            runHook preCheck
            pushd ..
            source scripts/nix-in-build.sh
            PATH="$out/bin:$PATH" PYTHONPATH="$out/${python.sitePackages}:$PYTHONPATH" \
              pytest -n "$NIX_BUILD_CORES" -p no:cacheprovider
            popd
            runHook postCheck
          '';

          pythonImportsCheck = [ "devbox" ];

          meta = {
            description = pyproject.project.description;
            mainProgram = "devbox-ctl";
            license = lib.licenses.mit;
          };
        };

      # The profile the image is built from, evaluated with home-manager's lib.
      toolkitFor =
        pkgs:
        import ./containers/devcontainer/toolkit.nix {
          inherit home-manager pkgs;
          profile = self.homeModules.devcontainer;
        };

      mkDevcontainer =
        pkgs:
        let
          toolkit = toolkitFor pkgs;
        in
        pkgs.callPackage ./containers/devcontainer {
          devbox-ctl = self.packages.${pkgs.stdenv.hostPlatform.system}.devbox-ctl;
          toolkit = toolkit.packages;
          inherit (toolkit) gitConfig gitIgnore sessionVariables;
        };
    in
    {
      packages = forAllSystems (
        pkgs:
        {
          devbox-ctl = mkDevboxCtl pkgs;
          default = self.packages.${pkgs.stdenv.hostPlatform.system}.devbox-ctl;
        }
        # The image for every Linux system, so that the orchestrator wrapper below has its
        # default on an aarch64-linux host too.
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          devcontainer = mkDevcontainer pkgs;
        }
      );

      apps = forAllSystems (
        pkgs:
        let
          app = {
            type = "app";
            program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.devbox-ctl;
            meta.description = "devbox-ctl: generate, check and plan the Quadlet units; manage containers";
          };
        in
        {
          devbox-ctl = app;
          default = app;
        }
      );

      homeModules = {
        cli = ./home/modules/cli.nix;
        dev = ./home/modules/dev.nix;
        git = ./home/modules/git.nix;
        devcontainer = ./home/modules/devcontainer.nix;
        default = self.homeModules.devcontainer;
      };

      # The module itself is nixos/orchestrator.nix; this wrapper gives it this flake's
      # devbox-ctl and image for the host's system, which a host can still override. Its key
      # makes the module system import it once however often a configuration names it
      # (nixosModules.default, lib.fleetHive and lib.fleetModules import it too); without one,
      # a second import defines services.devbox.package twice.
      nixosModules = {
        orchestrator =
          { lib, pkgs, ... }:
          let
            system = pkgs.stdenv.hostPlatform.system;
          in
          {
            key = "devbox#nixosModules.orchestrator";
            _file = "${toString ./flake.nix}#nixosModules.orchestrator";
            imports = [ ./nixos/orchestrator.nix ];
            services.devbox = {
              package = lib.mkDefault self.packages.${system}.devbox-ctl;
              image = lib.mkDefault self.packages.${system}.devcontainer;
            };
          };
        default = self.nixosModules.orchestrator;
      };

      # A fleet of orchestrators (docs/fleet.md), from the generated directory of users.nix
      # with `hosts`. fleetHive is colmena's hive, the value of a flake's `colmena` output:
      #   colmena = devbox.lib.fleetHive {
      #     meta.nixpkgs = import nixpkgs { system = "x86_64-linux"; };
      #     generatedDir = ./devbox/generated;
      #     hosts.alpha = ./hosts/alpha.nix;  # each host's own modules
      #   };
      # fleetModules gives each host's module list, for nixosSystem (deploy-rs,
      # nixos-rebuild --target-host). Both are nixos/lib.nix's, with this flake's module.
      lib =
        let
          devboxLib = import ./nixos/lib.nix { inherit lib; };
          module = self.nixosModules.orchestrator;
        in
        {
          fleetHive = args: devboxLib.fleetHive ({ inherit module; } // args);
          fleetModules = args: devboxLib.fleetModules ({ inherit module; } // args);
        };

      checks.${linux} =
        let
          pkgs = pkgsLinux;
          devbox-ctl = self.packages.${linux}.devbox-ctl;
        in
        {
          # The Python test suite, run by the package's check phase.
          pytest-nix = devbox-ctl;

          # The committed generated examples (a single host's and a fleet's) are what
          # devbox-ctl makes of their inputs.
          generated-up-to-date =
            pkgs.runCommand "devbox-generated-up-to-date"
              {
                nativeBuildInputs = [
                  devbox-ctl
                  pkgs.nix
                ];
              }
              ''
                source ${./scripts/nix-in-build.sh}
                bash ${./scripts/check-generated.sh} ${exampleSource}
                touch $out
              '';

          # podman's own generator accepts every generated unit, per user as the module
          # installs them: the single host's and every slice of the fleet's.
          quadlet = pkgs.runCommand "devbox-quadlet" { } ''
            bash ${./scripts/check-quadlet.sh} \
              ${exampleSource}/examples/basic/generated/users \
              ${exampleSource}/examples/fleet/generated/hosts/*/users \
              ${quadletOf pkgs}
            touch $out
          '';

          # nixfmt (RFC style) for Nix, ruff for Python, shellcheck for shell
          # (scripts/check-formatting.sh).
          formatting =
            pkgs.runCommand "devbox-formatting"
              {
                nativeBuildInputs = [
                  pkgs.nixfmt
                  pkgs.ruff
                  pkgs.shellcheck
                  pkgs.findutils
                ];
              }
              ''
                cd ${formattedSource}
                bash scripts/check-formatting.sh
                touch $out
              '';

          # The orchestrator module in a NixOS VM (written with the module).
          orchestrator-vm = import ./tests/nixos/orchestrator.nix { inherit pkgs self; };
        };

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (
              ps:
              runtimeDependencies ps ++ testDependencies ps ++ lintDependencies ps ++ [ ps.setuptools ]
            ))
            pkgs.ruff
            pkgs.nix
            pkgs.nixfmt
            pkgs.nixfmt-tree
            pkgs.shellcheck
            pkgs.jq
          ]
          ++ lib.optionals pkgs.stdenv.hostPlatform.isLinux [ pkgs.podman ];
          env = lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
            DEVBOX_QUADLET = quadletOf pkgs;
          };
          # `python -m devbox` runs devbox-ctl from this checkout without installing it;
          # `nix run .#devbox-ctl -- …` runs the packaged one.
          shellHook = ''
            export PYTHONPATH="$PWD/generator/src''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });
    };
}
