"""AntreaProxy's registers and conntrack marks (its share of the layout documented in
`antrea_core.agent.openflow.registers`: reg3, reg4, ct_mark bits 5-15, reg0 bits 20-29).

* reg3 ``EP_IP``: the selected endpoint's IPv4 address. Written by a ServiceLB group
  bucket or a learned SessionAffinity flow, read by EndpointDNAT (one DNAT flow per
  endpoint, since ct's nat range cannot come from a register).
* reg4 bits 0-15 ``EP_PORT``: the selected endpoint's port.
* reg4 bits 16-17 ``EP_STATE``: 1 = an endpoint is selected (reg3/reg4 valid); 2 = one
  was just selected for a ClientIP-affinity Service and must be learned first. 0 lets
  EndpointDNAT tell an affinity miss (select now) from a hit.
* ct_mark bit 4 ``SERVICE`` (core): the connection was DNAT-ed here and committed by us.
* ct_mark bit 5 ``HAIRPIN``: a pod reached itself through a Service; the SNAT table
  masquerades such connections to `HAIRPIN_VIRTUAL_IP` so the pod answers through OVS.
* ct_mark bit 6 ``SNAT_CONN`` / reg0 bit 20 ``SNAT_REQUIRED``: NodePort traffic from
  outside the node's pods is masqueraded to the node's gateway IP, so that the endpoint
  (on any node) answers through this node, which undoes the DNAT.

Conntrack zone `SNAT_ZONE` (Antrea's 65521) holds the hairpin SNAT, apart from the DNAT
that lives in the core zone: one connection cannot carry both translations.
"""

from __future__ import annotations

from antrea_core.agent.openflow.registers import RegField

EP_IP = RegField("reg3", 0, 32)
EP_PORT = RegField("reg4", 0, 16)
EP_STATE = RegField("reg4", 16, 2)
EP_SELECTED = EP_STATE.mark(1)
EP_UNSELECTED = EP_STATE.mark(0)
EP_TO_LEARN = EP_STATE.mark(2)

HAIRPIN_CONN = RegField("ct_mark", 5, 1)
HAIRPIN = HAIRPIN_CONN.mark(1)
SNAT_CONN = RegField("ct_mark", 6, 1)
NEEDS_SNAT = SNAT_CONN.mark(1)

# reg0 bit 20: this packet reached a frontend whose connections are SNAT-ed to the
# gateway IP (NodePort from outside, externalTrafficPolicy Cluster); EndpointDNAT copies
# it into ct_mark bit 6 so every later packet of the connection gets the SNAT too.
SNAT_REQUIRED = RegField("reg0", 20, 1)

SNAT_ZONE = 0xFFF1  # 65521
HAIRPIN_VIRTUAL_IP = "169.254.0.253"  # Antrea's virtual hairpin source
# The host DNATs NodePort traffic to this address and routes it into antrea-gw0 (proxyAll).
NODEPORT_VIRTUAL_IP = "169.254.0.252"
