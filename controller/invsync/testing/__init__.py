"""Test support that runs real Kubernetes parts: the local control plane (``invsync.testing.cluster``)."""
