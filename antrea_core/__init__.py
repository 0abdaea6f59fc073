"""Antrea in Python: the core distribution (agent, controller, CNI binary, antctl)."""

__version__ = "0.1.0"
