"""Tunnel drivers of the Antrea agent, selected by `tunnelType` in antrea-agent.conf."""
