"""Tailscale: a container's node state (asked inside the container) and the device API.

A container has joined the tailnet when its tailscaled reports BackendState "Running". The
API (api.tailscale.com, with an access token from a root-only file) is used for one thing:
removing a destroyed container's device.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox.escaping import shown
from devbox.tools.podman import Podman

# How much of a node's answer is shown: a DNS name is at most 253 characters.
LIMIT = 253
MAX_ADDRESSES = 8


@dataclass(frozen=True)
class NodeState:
    """What the container's tailscaled says about itself."""

    backend: str  # Running, NeedsLogin, Starting, Stopped, … or "unknown"
    dns_name: str = ""
    addresses: tuple[str, ...] = ()

    @property
    def joined(self) -> bool:
        """Whether the node is logged in and up."""
        return self.backend == "Running"


def node_state(podman: Podman, container: str) -> NodeState:
    """The node state of a running container ("unknown" when it cannot be asked).

    The answer is the container's owner's to make (tailscaled's socket lives in their
    container), so it is read as hostile text: the state and the name escaped and bounded
    (escaping.shown), the addresses only those that are IP addresses.
    """
    result = podman.exec(container, "tailscale", "status", "--json", "--peers=false", timeout=30)
    try:
        status = json.loads(result.stdout)
    except ValueError:
        return NodeState("unknown")
    if not isinstance(status, dict):
        return NodeState("unknown")
    node = status.get("Self")
    node = node if isinstance(node, dict) else {}
    return NodeState(
        backend=shown(status.get("BackendState", "unknown"), limit=LIMIT),
        dns_name=shown(str(node.get("DNSName", "")).rstrip("."), limit=LIMIT),
        addresses=_addresses(node.get("TailscaleIPs")),
    )


def _addresses(value: object) -> tuple[str, ...]:
    """The entries of TailscaleIPs that are IP addresses, as Python writes them."""
    if not isinstance(value, list):
        return ()
    found = []
    for entry in value[:MAX_ADDRESSES]:
        try:
            found.append(str(ipaddress.ip_address(str(entry))))
        except ValueError:
            continue
    return tuple(found)


class TailscaleApi:
    """The few calls of Tailscale's v2 API that devbox makes."""

    def __init__(self, base_url: str, tailnet: str, token_file: Path) -> None:
        self.base_url = base_url.rstrip("/")
        self.tailnet = tailnet
        self.token = token_file.read_text(encoding="utf-8").strip()

    def _request(self, method: str, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the URL is the configured API
            f"{self.base_url}{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = response.read()
        return json.loads(body) if body else None

    def find_devices(self, hostname: str) -> list[dict[str, Any]]:
        """The tailnet's devices with this host name."""
        tailnet = urllib.parse.quote(self.tailnet, safe="-")
        devices = self._request("GET", f"/api/v2/tailnet/{tailnet}/devices")
        return [d for d in devices.get("devices", []) if d.get("hostname") == hostname]

    def delete_device(self, device_id: str) -> None:
        """Remove a device from the tailnet."""
        self._request("DELETE", f"/api/v2/device/{urllib.parse.quote(device_id, safe='')}")


def remove_device(api: TailscaleApi, hostname: str, tag: str) -> list[str]:
    """Remove the devices of a destroyed container (matched by host name and owner tag)."""
    removed = []
    for device in api.find_devices(hostname):
        if tag in (device.get("tags") or []):
            api.delete_device(str(device["id"]))
            removed.append(str(device.get("name") or device["id"]))
    return removed


ApiError = (urllib.error.URLError, OSError, ValueError)
