-- Payments aggregated per order (feeds fct_orders.paid_amount).
--
-- Why this reads the raw source and not stg_payments: stg_payments is owned by
-- the finance domain, and finance marts depend on fct_orders (core). If core
-- depended on stg_payments too, the core and finance DAGs would each wait on
-- the other's Assets (a cycle). Reading the source keeps core -> finance one-way;
-- the cast + latest-version rule is the same as in stg_payments.
with source as (
    select
        cast(id as bigint)              as payment_id,
        cast(order_id as bigint)        as order_id,
        cast(amount as decimal(18, 2))  as amount,
        cast(updated_at as timestamp)   as updated_at
    from {{ source('shop', 'payments') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by payment_id order by updated_at desc) as version_rank
    from source
)

select
    order_id,
    count(*)                           as payment_count,
    cast(sum(amount) as decimal(18, 2)) as paid_amount
from versions
where version_rank = 1
group by order_id
