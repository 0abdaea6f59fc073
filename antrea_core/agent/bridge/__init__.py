"""The agent's OVS bridge: the OVSDB connection, bridge/port lifecycle, the interface store.

* `ovsdb` — the one connection to ovsdb-server; transactions that check what vswitchd did.
* `lifecycle` — idempotent bridge, gateway, tunnel, uplink and pod-port management.
* `interface_store` — the in-memory index of this node's interfaces, rebuilt from OVSDB.
"""
