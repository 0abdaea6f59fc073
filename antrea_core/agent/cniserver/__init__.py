"""The agent's CNI server: the gRPC endpoint antrea-cni talks to, request validation and
the CNI error type handlers raise."""
