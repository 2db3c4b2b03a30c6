let
  # users.nix is plain Nix: let-bindings and functions of its own are fine.
  user = uid: { inherit uid; };
in
{
  users = {
    carol = user 1003;
    alice = user 1001;
    bob = user 1002;
  };
  containers.maxGlobal = 9;
}
