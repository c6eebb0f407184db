-- One row per order. An order is first loaded as 'placed' and later updated to
-- 'completed' or 'returned'; the latest updated_at is the current status.
with source as (
    select
        cast(id as bigint)               as order_id,
        cast(customer_id as bigint)      as customer_id,
        cast(campaign_id as bigint)      as campaign_id,
        cast(status as varchar)          as status,
        cast(amount as decimal(18, 2))   as amount,
        cast(created_at as timestamp)    as created_at,
        cast(updated_at as timestamp)    as updated_at
    from {{ source('shop', 'orders') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by order_id order by updated_at desc) as version_rank
    from source
)

select order_id, customer_id, campaign_id, status, amount, created_at, updated_at
from versions
where version_rank = 1
