"""Pod network plumbing on the node: veth pairs, addresses and routes inside pod netns."""
