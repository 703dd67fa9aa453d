"""study_summary: check a shared Optuna study lost no trial; best params and an HTML report."""
