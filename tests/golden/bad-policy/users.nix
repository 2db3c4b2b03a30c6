{
  users.alice.uid = 1001;
  containers = {
    idleStopDays = 10;
    stoppedDestroyDays = 5;
    maxPerUser = 8;
    maxGlobal = 0;
    image = "Not An Image";
    cleanupSchedule = "daily\nExecStart=/bin/sh";
    cleanupRandomizedDelay = "soon";
    stopWarningHours = [ 0 ];
    webhookUrl = "ftp://example.org";
  };
}
