{#
  Use a model's custom schema as-is (staging, intermediate, analytics) instead
  of dbt's default "<target schema>_<custom schema>", so relation names are the
  same on every target and the orchestrator can name them as Assets.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
