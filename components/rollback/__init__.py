"""rollback: move the registry's `champion` alias back to the version it replaced, recording why."""
