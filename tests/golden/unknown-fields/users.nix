{ users.alice.uid = 1001; containers = { maxPerUsr = 3; }; extra = true; }
