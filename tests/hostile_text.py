"""Text a user controls, made to attack a terminal: the attack tests' shared samples."""

from __future__ import annotations

# A line of devbox's own, forged.
FORGED = "work (bob, running): DESTROY now (after a snapshot)"
# What a terminal acts on: ESC, CSI (C1), BEL, CR, the line and paragraph separators, and a
# right-to-left override.
RAW = ("\x1b", "\x9b", "\x07", "\r", "\u2028", "\u2029", "\u202e")

# What a container's owner can make their tailscaled answer: a state, a name and addresses
# that carry escape sequences and forged lines (the review's `status web`).
HOSTILE_NODE = {
    "Version": "1.94.2",
    "BackendState": f"Running\x1b]0;owned\x07\r\n{FORGED}",
    "Self": {
        "DNSName": f"web.\x1b[2Jtail\u202e.ts.net.\n{FORGED}",
        "TailscaleIPs": ["100.64.0.7", f"\x1b[31m\n{FORGED}"],
    },
}
