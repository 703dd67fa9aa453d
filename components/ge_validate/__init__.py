"""ge_validate: validate a table or dataset against a committed Great Expectations suite."""
