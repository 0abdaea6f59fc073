"""The agent's side of the controller's control-plane API (watch client, discovery)."""
