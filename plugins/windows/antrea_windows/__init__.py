"""Windows nodes: HNS networking and the Windows OVS datapath."""
