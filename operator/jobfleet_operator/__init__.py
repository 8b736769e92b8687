"""The jobfleet operator: Queue resources reconciled into autoscaled worker Deployments."""
