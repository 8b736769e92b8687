"""jobfleet's version, in a module of its own so that any layer can read it."""

VERSION = "0.1.0"  # also the distribution's (pyproject.toml reads it from here)
