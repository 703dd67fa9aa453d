-- One tag per project: its latest record when the source was re-synced (macros/latest_record.sql).
{{ latest_record(source('mlops_course', 'tags'), {
    'id': dbt.type_bigint(),
    'tag': dbt.type_string(),
}) }}
