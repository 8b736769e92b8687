"""jobfleet examples: Queue manifests, a handler module, and the `make demo` script."""
