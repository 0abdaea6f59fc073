"""The lab controller-manager: node IPAM, EndpointSlices, namespaces, scheduler."""
