"""Flush the userspace datapath's flow cache after policy flows change.

Measured in the lab (OVS 3.1, ``datapath_type=netdev``): after a policy that allowed
x/a -> z/a on TCP/81 was deleted and a narrower one isolated x/a again, the OpenFlow
tables were exactly right but x/a kept connecting to z/a on TCP/81 for more than 10 s:
the cached datapath flows were not corrected by revalidation. ``ovs-appctl
revalidator/purge`` ended the leak at once. Purging drops every cached datapath flow of
the switch; the next packets are translated again from the OpenFlow tables
(established connections pass through the conntrack bypass), so it is paid once per
policy update, not per packet.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

log = logging.getLogger("antrea.agent.networkpolicy")

VSWITCHD = "ovs-vswitchd"
TIMEOUT = 10.0


class DatapathFlusher:
    """Callable purging ovs-vswitchd's datapath flows through its unixctl socket in
    `ovs_run_dir`. Failures are logged, never raised: the flows are right either way."""

    def __init__(self, ovs_run_dir: str | Path) -> None:
        self.run_dir = Path(ovs_run_dir)

    def control_socket(self) -> Path | None:
        """``ovs-vswitchd.ctl`` when started with that name, else ``ovs-vswitchd.<pid>.ctl``
        (OVS's default) from the pidfile."""
        plain = self.run_dir / f"{VSWITCHD}.ctl"
        if plain.exists():
            return plain
        try:
            pid = (self.run_dir / f"{VSWITCHD}.pid").read_text().strip()
        except OSError:
            return None
        ctl = self.run_dir / f"{VSWITCHD}.{pid}.ctl"
        return ctl if ctl.exists() else None

    def __call__(self) -> None:
        ctl = self.control_socket()
        if ctl is None:
            log.warning("cannot purge datapath flows: no %s control socket in %s",
                        VSWITCHD, self.run_dir)
            return
        try:
            subprocess.run(["ovs-appctl", "-t", str(ctl), "revalidator/purge"],
                           check=True, capture_output=True, text=True, timeout=TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("purging datapath flows failed socket=%s error=%s", ctl, exc)
