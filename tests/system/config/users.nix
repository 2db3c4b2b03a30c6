# The host test's users.nix (tests/system): two users, small limits for a small guest.
{
  users = {
    alice = {
      uid = 1001;
      admin = true;
    };
    bob = {
      uid = 1002;
      maxContainers = 2;
    };
  };
  containers = {
    opVault = "DevBox";
    # room for the benchmark's 20 containers (bench/bench_host.py)
    maxPerUser = 20;
    maxGlobal = 24;
    defaultCpu = 1;
    defaultMemory = "512M";
    idleStopDays = 7;
    stoppedDestroyDays = 14;
    cleanupSchedule = "*-*-* 04:00:00";
  };
}
