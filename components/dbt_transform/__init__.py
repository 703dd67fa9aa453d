"""dbt_transform: build the labeled_projects mart with dbt (models + data tests) into the audit schema."""
