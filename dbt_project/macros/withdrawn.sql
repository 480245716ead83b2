{#-
  fct_transactions post-hook: a corrected landing file can withdraw transactions (ingestion deletes
  them from bronze); delete them from the mart too, so incremental history equals a full refresh.
  The (cheap) anti-join count runs first; the MERGE only when something was withdrawn.
-#}
{% macro delete_withdrawn_transactions() -%}
    {%- if execute and is_incremental() -%}
        {%- set withdrawn_query -%}
            select count(*) from {{ this }} as target
            left anti join {{ source('bronze', 'transactions') }} as source
            on target.transaction_id = source.transaction_id
        {%- endset -%}
        {%- set withdrawn = run_query(withdrawn_query).columns[0].values()[0] -%}
    {%- else -%}
        {%- set withdrawn = 0 -%}
    {%- endif -%}
    {%- if withdrawn > 0 -%}
    merge into {{ this }} as target
    using (select distinct transaction_id from {{ source('bronze', 'transactions') }}) as source
    on target.transaction_id = source.transaction_id
    when not matched by source then delete
    {%- else -%}
    select 1 as nothing_withdrawn
    {%- endif -%}
{%- endmacro %}
