{#
  The latest record of each id of a source that airbyte_sync loads: a re-sync appends the
  rows again, and the one extracted last wins (a tie: the larger _airbyte_raw_id).

  relation: the source (`source('mlops_course', 'projects')`)
  columns:  the columns to keep, in order, each with the type it is cast to
            ({'id': dbt.type_bigint(), ...}); `id` is the key

  A ranked subquery rather than QUALIFY: BigQuery has rejected a QUALIFY without a
  WHERE/GROUP BY/HAVING clause, while this form is plain SQL on DuckDB and BigQuery alike.
#}
{% macro latest_record(relation, columns) %}
select {{ columns.keys() | join(', ') }}
from (

    select
        {%- for name, type in columns.items() %}
        cast({{ name }} as {{ type }}) as {{ name }},
        {%- endfor %}
        row_number() over (
            partition by id
            order by _airbyte_extracted_at desc, _airbyte_raw_id desc
        ) as record_rank
    from {{ relation }}

) as ranked
where record_rank = 1
{% endmacro %}
