"""IPsec: encryption of tunnel traffic with strongSwan over VICI."""
