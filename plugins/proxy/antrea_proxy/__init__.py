"""AntreaProxy: Kubernetes Services in the OVS pipeline."""
