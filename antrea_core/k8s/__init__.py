"""Kubernetes plumbing shared by the project's daemons: client construction, raw JSON
requests, list+watch informers and a serial event dispatcher.

Business logic (the controller's policy computation, the agent's realization) never
imports the kubernetes client directly; it receives plain dicts in API JSON shape from
here.
"""
