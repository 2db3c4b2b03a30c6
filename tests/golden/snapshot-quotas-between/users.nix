{
  users.alice.uid = 1001;
  containers = {
    maxSnapshotsPerUser = 3;
    maxSnapshotsGlobal = 2;
    maxSnapshotBytesGlobal = "1G";
  };
}
