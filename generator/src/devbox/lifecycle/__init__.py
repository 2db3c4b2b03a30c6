"""The lifecycle of a container: when it is stopped for idleness and when it is destroyed.

`policy` decides (a pure function) from the facts `assessment` gathers off the host;
`notices` warns the owner beforehand; `work` finds unsaved git work on a volume; `snapshots`
and `snapshot_quota` keep a volume's export before anything deletes it. The verbs that act
on these decisions are in runtime/.
"""
