{
  users.alice.uid = 1001;
  containers = {
    maxSnapshotsPerUser = 0;
    maxSnapshotsGlobal = "many";
    maxSnapshotBytesPerUser = "lots";
    maxSnapshotBytesGlobal = 100;
  };
}
