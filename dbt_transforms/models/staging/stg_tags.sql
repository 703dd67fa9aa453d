-- One row per project: the latest tag record of each id when a source was re-synced
-- (see stg_projects for why this is a ranked subquery).
with source as (

    select * from {{ source('mlops_course', 'tags') }}

),

ranked as (

    select
        cast(id as {{ dbt.type_bigint() }}) as id,
        cast(tag as {{ dbt.type_string() }}) as tag,
        row_number() over (
            partition by id
            order by _airbyte_extracted_at desc, _airbyte_raw_id desc
        ) as record_rank
    from source

)

select id, tag
from ranked
where record_rank = 1
