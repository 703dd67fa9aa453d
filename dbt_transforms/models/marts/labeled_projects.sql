-- The lesson's labeled dataset: every project with its tag (null when untagged).
with projects as (

    select * from {{ ref('stg_projects') }}

),

tags as (

    select * from {{ ref('stg_tags') }}

)

select
    projects.id,
    projects.created_on,
    projects.title,
    projects.description,
    tags.tag
from projects
left join tags
    on projects.id = tags.id
