{
  users = {
    alice = { uid = 1001; admin = true; };
    bob = { uid = 1002; maxContainers = 1; };
  };
  containers = {
    opVault = "Team Vault";
    defaultCpu = 1.5;
    defaultMemory = "3g";
    maxCpu = 8;
    maxMemory = "32G";
    image = "registry.example.org:5000/team/devbox:2026.11";
    cleanupSchedule = "Mon..Fri *-*-* 03:30:00";
    cleanupRandomizedDelay = "15min";
    idleStopDays = 3;
    stoppedDestroyDays = 3;
    # the image brings no Nix of its own, or the host has no nix-daemon
    nixDaemon = false;
  };
}
