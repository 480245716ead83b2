{#- End of the as-of day (exclusive): labels known strictly before this instant count. -#}
{% macro label_as_of_end(transactions_relation) -%}
    {%- if var('as_of', none) -%}
        (cast('{{ var("as_of") }}' as timestamp) + interval 1 day)
    {%- else -%}
        (select date_trunc('DAY', max(tx_datetime)) + interval 1 day from {{ transactions_relation }})
    {%- endif -%}
{%- endmacro %}
