"""The tables of the agent's core features (pod networking and NetworkPolicy).

Names follow Antrea's pipeline (docs/design/ovs-pipeline.md) so that flow dumps read the
same; plugins add theirs (AntreaProxy: SessionAffinity, ServiceLB, EndpointDNAT …).
"""

from __future__ import annotations

from antrea_core.agent.openflow.pipeline import Pipeline, Stage, TableSpec

ROOT = TableSpec("PipelineRootClassifier", Stage.START, Pipeline.ROOT)

ARP = (
    TableSpec("ARPSpoofGuard", Stage.VALIDATION, Pipeline.ARP, missing="drop"),
    TableSpec("ARPResponder", Stage.OUTPUT, Pipeline.ARP),
)

POD_NETWORKING = (
    TableSpec("Classifier", Stage.CLASSIFIER, missing="drop"),
    TableSpec("SpoofGuard", Stage.VALIDATION, rank=10, missing="drop"),
    TableSpec("ConntrackZone", Stage.CONNTRACK_STATE, rank=10),
    TableSpec("ConntrackState", Stage.CONNTRACK_STATE, rank=20),
    TableSpec("L3Forwarding", Stage.ROUTING, rank=10),
    TableSpec("L3DecTTL", Stage.POST_ROUTING, rank=10),
    TableSpec("L2ForwardingCalc", Stage.SWITCHING, rank=10),
    TableSpec("ConntrackCommit", Stage.CONNTRACK, rank=10),
    TableSpec("Output", Stage.OUTPUT, rank=10, missing="drop"),
)

NETWORK_POLICY = (
    TableSpec("EgressRule", Stage.EGRESS_SECURITY, rank=20),
    TableSpec("EgressDefaultRule", Stage.EGRESS_SECURITY, rank=30),
    TableSpec("EgressMetric", Stage.EGRESS_SECURITY, rank=40),
    TableSpec("IngressSecurityClassifier", Stage.INGRESS_SECURITY, rank=10),
    TableSpec("IngressRule", Stage.INGRESS_SECURITY, rank=20),
    TableSpec("IngressDefaultRule", Stage.INGRESS_SECURITY, rank=30),
    TableSpec("IngressMetric", Stage.INGRESS_SECURITY, rank=40),
    # SCTP associations (networkpolicy.flowcalc.sctp_association_flows): learned after
    # the policy tables allowed a packet; looked up (resubmit only) from EgressRule.
    TableSpec("SCTPAssociationLearn", Stage.INGRESS_SECURITY, rank=50),
    TableSpec("SCTPAssociations", Stage.OUTPUT, rank=90),
)


def core_tables() -> list[TableSpec]:
    return [ROOT, *ARP, *POD_NETWORKING, *NETWORK_POLICY]
