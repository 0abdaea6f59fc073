"""OpenFlow encoding of NetworkPolicy flows: os-ken objects vs the packed encoder.

Run:  .venv/bin/python bench/flow_encoding.py [--peers 10000] [--repeat 5]
Prints: for the flows of one rule with `--peers` distinct peer IPs x 3 ports x 5 local
pods, the best-of-`--repeat` CPU time (process time: the machine is shared, wall
time swings with other load) to encode them all as adds, then as strict deletes
(fresh encoder each time, so caches start cold) with
  objects       os-ken OFPFlowMod/OFPMatch objects (`FlowEncoder`)
  packed-netaddr the packed encoder with os-ken's netaddr field conversion and no action
                cache (the encoder before the fast path)
  packed        the packed encoder as shipped (inet_pton fields, cached actions)
and checks that all of them produce the same bytes.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.openflow.bridge_client import FlowEncoder, PackedFlowEncoder
from antrea_core.agent.openflow.connection import serialize
from antrea_core.agent.openflow.oxm import reference_oxm_tlv

sys.path.insert(0, str(Path(__file__).parent))
from policy_flows import LAYOUT, NODE, scenario


class NetaddrPackedEncoder(PackedFlowEncoder):
    """The packed encoder as it was: os-ken field conversion, actions re-serialized."""

    def __init__(self, layout: Any) -> None:
        super().__init__(layout)
        self._field_tlv = functools.lru_cache(maxsize=65536)(reference_oxm_tlv)

    def apply_actions_bytes(self, actions: Sequence[Any]) -> bytes:
        buf = bytearray()
        ofpp.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions)).serialize(buf, 0)
        return bytes(buf)


def best(repeat: int, run: Callable[[], list[bytes]]) -> tuple[float, list[bytes]]:
    times, out = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        out = run()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ctl = NetworkPolicyController(NODE, None)
    scenario(ctl, args.peers, 3, 5)
    flows = ctl.flows()
    cookie = 3 << 56 | 1 << 48
    print(f"{len(flows)} flows ({args.peers} peers x 3 ports x 5 local pods), "
          f"best of {args.repeat}")
    for command, label, encoders in (
            (ofp.OFPFC_ADD, "add", (("objects", FlowEncoder),
                                    ("packed-netaddr", NetaddrPackedEncoder),
                                    ("packed", PackedFlowEncoder))),
            # Deletes used to fall back to os-ken objects ("objects" was the old path).
            (ofp.OFPFC_DELETE_STRICT, "delete_strict", (("objects", FlowEncoder),
                                                        ("packed", PackedFlowEncoder)))):
        results = {}
        for name, make in encoders:
            def run(make: Any = make, command: int = command) -> list[bytes]:
                encoder = make(LAYOUT)
                return [bytes(serialize(encoder.encode(f, cookie, command), 1))
                        for f in flows]

            seconds, out = best(args.repeat, run)
            results[name] = out
            print(f"  {label:<14} {name:<15} {seconds * 1000:7.0f} ms  "
                  f"{seconds / len(flows) * 1e6:6.1f} us/flow")
        outputs = list(results.values())
        print(f"  {label:<14} identical bytes: {all(o == outputs[0] for o in outputs)}")


if __name__ == "__main__":
    main()
