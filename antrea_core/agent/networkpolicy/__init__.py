"""NetworkPolicy enforcement in the agent: rule cache, flow computation, realization.

* `rulecache`: the policies/groups spanning this node; what each rule means here.
* `flowcalc`: rules as conjunctive flows, default deny, static bypasses.
* `controller`: the `PolicyEventHandler`; incremental, atomic flow updates; replay.
* `agentplugin`: wiring into the agent (pod hooks, OVS reconnects).

See docs/networkpolicy.md.
"""
