"""Control-plane dataclasses survive protobuf encoding; the hand-framed bytes are valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from controlplane_objects import address_group, applied_to_group, member, policy

from antrea_core.apis import controlplane_codec as codec
from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis.controlplane import (
    AddressGroup,
    EventType,
    GroupPatch,
    ObjectKind,
    WatchEvent,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def roundtrip(ev: WatchEvent) -> WatchEvent:
    return codec.event_from_pb(pb.WatchEvent.FromString(codec.event_bytes(ev)))


def test_policy_with_every_rule_shape_round_trips():
    p = policy("p1")
    assert codec.policy_from_pb(pb.NetworkPolicy.FromString(
        codec.policy_to_pb(p).SerializeToString())) == p
    ev = WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p1", p)
    assert roundtrip(ev) == ev


def test_named_and_numbered_and_absent_ports_stay_distinct():
    rule = policy("p1").rules[0]
    back = codec.service_from_pb(codec.service_to_pb(rule.services[1]))
    assert back.port == "http"
    assert codec.service_from_pb(codec.service_to_pb(rule.services[0])).port == 80
    assert codec.service_from_pb(codec.service_to_pb(rule.services[3])).port is None
    assert codec.service_from_pb(codec.service_to_pb(rule.services[2])).end_port == 2000


def test_groups_with_named_ports_round_trip_in_events():
    atg = applied_to_group("atg-1", range(50), node="node-b")
    ag = AddressGroup("ag-1", frozenset(member(i, ports=True) for i in range(20)))
    for ev in (WatchEvent(EventType.ADDED, ObjectKind.APPLIED_TO_GROUP, "atg-1", atg),
               WatchEvent(EventType.ADDED, ObjectKind.ADDRESS_GROUP, "ag-1", ag),
               WatchEvent(EventType.DELETED, ObjectKind.ADDRESS_GROUP, "ag-1")):
        assert roundtrip(ev) == ev


def test_patch_round_trips_with_added_and_removed():
    patch = GroupPatch(ObjectKind.ADDRESS_GROUP, "ag-1",
                       frozenset(member(i) for i in (1, 2)), frozenset([member(9)]))
    ev = WatchEvent(EventType.MODIFIED, ObjectKind.ADDRESS_GROUP, "ag-1", patch=patch)
    back = roundtrip(ev)
    assert back == ev
    assert back.obj is None


def test_hand_framed_group_equals_protobuf_encoding_of_same_members():
    g = address_group("ag-big", range(300))
    framed = pb.AddressGroup.FromString(codec.group_bytes(g))
    assert framed.name == "ag-big"
    assert {m.pod.name for m in framed.members} == {f"pod-{i}" for i in range(300)}
    # Lengths above 127 need multi-byte varints: a 10-IP member crosses that.
    big = member(1)
    big = type(big)(big.pod, tuple(f"fd00::{i}" for i in range(20)), big.node)
    assert codec.member_from_pb(pb.AddressGroup.FromString(
        codec.group_bytes(AddressGroup("x", frozenset([big])))).members[0]) == big


def test_decoding_interns_equal_members():
    g = address_group("ag", range(5))
    a = codec.address_group_from_pb(pb.AddressGroup.FromString(codec.group_bytes(g)))
    b = codec.address_group_from_pb(pb.AddressGroup.FromString(codec.group_bytes(g)))
    by_name = {m.pod.name: m for m in b.members}
    assert all(m is by_name[m.pod.name] for m in a.members)


def test_varint_matches_protobuf():
    for n in (1, 127, 128, 300, 16383, 16384, 2**31):
        # NetworkPolicy.generation is field 6, varint wire type: tag byte 0x30.
        assert b"\x30" + codec.varint(n) == pb.NetworkPolicy(generation=n).SerializeToString()
    # A string field of length 200 frames like protobuf does.
    s = "a" * 200
    assert codec.length_delimited(1, s.encode()) == pb.WatchRequest(
        node_name=s).SerializeToString()


def test_checked_in_generated_code_is_not_stale(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "hack" / "gen-proto.sh"), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    for name in ("controlplane_pb2.py", "controlplane_pb2_grpc.py"):
        fresh = (tmp_path / "antrea_core" / "apis" / name).read_text()
        checked_in = (ROOT / "antrea_core" / "apis" / name).read_text()
        assert fresh == checked_in, f"{name} is stale: run bash hack/gen-proto.sh"
