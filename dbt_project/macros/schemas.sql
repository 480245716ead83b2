{#- Custom schemas are used as-is (staging, intermediate, marts), not prefixed with the target schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}

{#- Schemas live under the lakehouse root, next to bronze/ and features/, whoever creates them first. -#}
{% macro spark__create_schema(relation) -%}
  {%- call statement('create_schema') -%}
    create schema if not exists {{ relation.without_identifier() }}
    location '{{ var("lakehouse_dir") }}/{{ relation.schema }}'
  {%- endcall -%}
{%- endmacro %}
