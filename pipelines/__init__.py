"""Pipelines (one file each), the local runner and the CLI (`python -m pipelines`)."""
