{#-
    Ingestion writes the bronze tables without Spark (delta-rs, by path under the lakehouse root). Before
    any model runs, make every bronze source visible in the Spark catalog by its location, so a fresh
    lakehouse works whichever process starts Spark first (here: dbt, in the Airflow producer task).
    Idempotent: tables already in the catalog are left as they are.
-#}
{% macro register_bronze_sources() -%}
    {%- if execute -%}
        {%- set root = var("lakehouse_dir") ~ "/bronze" -%}
        {%- do run_query("create schema if not exists bronze location '" ~ root ~ "'") -%}
        {%- for node in graph.sources.values() if node.source_name == "bronze" -%}
            {%- do run_query(
                "create table if not exists bronze." ~ node.name ~ " using delta location '" ~ root ~ "/" ~ node.name ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
