# The input of the orchestrator VM test (tests/nixos/orchestrator.nix): one user with two
# small containers. The three containers-*.json files are the states the test switches
# between; generated/<state>/ is what `devbox-ctl generate` makes of each, kept up to date by
# tests/nix/test_orchestrator_module.py.
{
  users = {
    alice = {
      uid = 1001;
      admin = true;
    };
  };

  containers = {
    opVault = "DevBox";
    defaultCpu = 1;
    defaultMemory = "256M";
  };
}
