"""Egress: SNAT of pod traffic to chosen Egress IPs."""
