-- One row per project: the latest record of each id when a source was re-synced.
-- A ranked subquery rather than QUALIFY: BigQuery has rejected a QUALIFY without a
-- WHERE/GROUP BY/HAVING clause, while this form is plain SQL on DuckDB and BigQuery alike.
with source as (

    select * from {{ source('mlops_course', 'projects') }}

),

ranked as (

    select
        cast(id as {{ dbt.type_bigint() }}) as id,
        cast(created_on as {{ dbt.type_timestamp() }}) as created_on,
        cast(title as {{ dbt.type_string() }}) as title,
        cast(description as {{ dbt.type_string() }}) as description,
        row_number() over (
            partition by id
            order by _airbyte_extracted_at desc, _airbyte_raw_id desc
        ) as record_rank
    from source

)

select id, created_on, title, description
from ranked
where record_rank = 1
