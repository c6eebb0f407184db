{{ config(tags=['pii']) }}

-- One row per customer: cast every column (raw types vary by loader) and keep
-- only the latest version of each id, in case a raw table holds several.
with source as (
    select
        cast(id as bigint)            as customer_id,
        cast(first_name as varchar)   as first_name,
        cast(last_name as varchar)    as last_name,
        cast(email as varchar)        as email,
        cast(country as varchar)      as country,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at
    from {{ source('shop', 'customers') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by customer_id order by updated_at desc) as version_rank
    from source
)

select customer_id, first_name, last_name, email, country, created_at, updated_at
from versions
where version_rank = 1
