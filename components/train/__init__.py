"""train: fit the tag model with the best params, evaluate it, log and register it in MLflow."""
