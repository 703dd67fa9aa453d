"""optimize: one Optuna worker of a study shared by parallel workers (trials logged to MLflow)."""
