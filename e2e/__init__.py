"""End-to-end tests of jobfleet against a real Kubernetes control plane (see e2e/README.md)."""
