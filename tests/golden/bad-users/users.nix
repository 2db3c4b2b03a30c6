{
  users = {
    alice = { uid = 1001; admin = "yes"; };
    bob = { uid = 1001; };
    "Bad Name" = { uid = 1003; };
    root = { uid = 0; };
    dave = { uid = 1004; maxContainer = 3; };
  };
}
