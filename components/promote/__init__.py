"""promote: move the registry's `champion` alias to a model version, recording why."""
