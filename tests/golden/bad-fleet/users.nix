{
  users = {
    alice = { uid = 1001; };
  };
  hosts = {
    alpha = { reach = "root@alpha"; capacity = { cpus = 4; memory = "8G"; containers = 2; }; };
    beta = { reach = "-oProxyCommand=evil"; capacity = { cpus = 0; memory = "lots"; containers = -1; }; labels = [ "GPU" "gpu" ]; };
    meta = { reach = "root@meta"; capacity = { cpus = 4; memory = "8G"; containers = 2; }; };
    "Gamma!" = { reach = "root@gamma"; capacity = { cpus = 4; memory = "8G"; containers = 2; }; };
  };
}
