-- One row per project: its latest record when the source was re-synced (macros/latest_record.sql).
{{ latest_record(source('mlops_course', 'projects'), {
    'id': dbt.type_bigint(),
    'created_on': dbt.type_timestamp(),
    'title': dbt.type_string(),
    'description': dbt.type_string(),
}) }}
