"""Acting on the host: its configuration, who is calling, the event log, the rebuild.

`context` builds the runtime context a verb works in (config, caller, declaration);
`rebuild` runs the configured rebuild command; `restart` restarts the containers whose units
a switch changed (`devbox-ctl apply`).
"""
