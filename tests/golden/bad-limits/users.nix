{
  users = {
    alice = { uid = 1001; };
    bob = { uid = 1002; maxContainers = 1; };
  };
  containers = { maxPerUser = 2; maxGlobal = 4; maxPinsPerUser = 1; maxCpu = 4; maxMemory = "8G"; };
}
