# Who may own dev containers on this host, and the policy for all of them.
# Plain Nix, no nixpkgs: devbox-ctl reads it with `nix-instantiate --eval --strict --json`,
# and the NixOS module imports it. Every field of `containers` is optional; the values
# below that are commented out are the defaults.
{
  users = {
    alice = {
      uid = 1001;
      admin = true;
    };
    bob = {
      uid = 1002;
      # bob's own limit, instead of maxPerUser
      maxContainers = 2;
    };
  };

  containers = {
    opVault = "DevBox"; # 1Password vault with the <user>-tailscale-authkey items
    # maxPerUser = 5;
    # maxGlobal = 7;
    # defaultCpu = 2;
    # defaultMemory = "4G";
    # idleStopDays = 7;
    # stoppedDestroyDays = 14;
    cleanupSchedule = "*-*-* 04:00:00";
  };
}
