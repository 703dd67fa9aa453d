"""airbyte_sync: extract and load a source stream into the warehouse's raw schema.

``client`` runs an Airbyte connection over HTTP (server mode); ``embedded`` loads the
source CSV into DuckDB the way Airbyte would (embedded mode); ``component`` is the KFP
wrapper.
"""
