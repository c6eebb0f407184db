-- One row per payment (latest version of each id).
with source as (
    select
        cast(id as bigint)              as payment_id,
        cast(order_id as bigint)        as order_id,
        cast(method as varchar)         as method,
        cast(amount as decimal(18, 2))  as amount,
        cast(created_at as timestamp)   as created_at,
        cast(updated_at as timestamp)   as updated_at
    from {{ source('shop', 'payments') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by payment_id order by updated_at desc) as version_rank
    from source
)

select payment_id, order_id, method, amount, created_at, updated_at
from versions
where version_rank = 1
