"""Hardware offload: SR-IOV VF representors on the OVS bridge."""
