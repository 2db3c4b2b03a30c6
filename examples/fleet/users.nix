# A fleet of three orchestrators declared in one file (docs/fleet.md). Plain Nix, no nixpkgs,
# read like examples/basic/users.nix. `hosts` is what makes it a fleet: devbox-ctl places each
# new container on one of them and writes one slice of the generated tree per host.
{
  users = {
    alice = {
      uid = 1001;
      admin = true;
    };
    bob = {
      uid = 1002;
    };
  };

  hosts = {
    # The control host: it holds this repository and runs devbox-ctl for the fleet.
    alpha = {
      reach = "root@alpha.example.ts.net";
      capacity = {
        cpus = 16;
        memory = "64G";
        containers = 6;
      };
    };
    beta = {
      reach = "root@beta.example.ts.net";
      capacity = {
        cpus = 32;
        memory = "128G";
        containers = 8;
      };
      labels = [ "gpu" ];
    };
    gamma = {
      reach = "root@gamma.example.ts.net";
      capacity = {
        cpus = 8;
        memory = "32G";
        containers = 4;
      };
    };
  };

  containers = {
    opVault = "DevBox";
    maxGlobal = 12;
    cleanupSchedule = "*-*-* 04:00:00";
  };
}
