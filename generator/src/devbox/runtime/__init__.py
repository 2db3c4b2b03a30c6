"""The runtime verbs of devbox-ctl on the host: what a person or the daily timer asks for.

`operations` creates, starts, stops, destroys and re-keys a container; `pins` pins and
unpins; `cleanup` is the daily run; `listing` is what `list` and `status` show.
"""
