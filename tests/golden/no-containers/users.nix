{ users = { alice = { uid = 1001; }; }; containers = { }; }
