"""Pod address management on the agent (host-local style, from the Node's podCIDRs)."""
