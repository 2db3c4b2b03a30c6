"""The runtime verbs of devbox-ctl on the host: what a person or the daily timer asks for.

`operations` creates, starts, stops, destroys and re-keys a container; `restore` brings a
snapshot back as a new container; `pins` pins and unpins; `cleanup` is the daily run;
`listing` is what `list`, `status`, `events` and `snapshots` show; `reach` is `connect` and
`logs`.
"""
