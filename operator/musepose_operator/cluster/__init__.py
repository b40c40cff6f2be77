"""The operator's access to the Kubernetes API: calls, watch cache, peering."""
