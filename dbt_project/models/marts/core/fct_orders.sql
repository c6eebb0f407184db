-- One row per order with its current status and what has been paid for it.
select
    orders.order_id,
    orders.customer_id,
    orders.campaign_id,
    orders.status,
    orders.amount,
    -- 0 rather than null for an order with no payments loaded (yet)
    coalesce(payments.paid_amount, 0)          as paid_amount,
    orders.created_at                          as ordered_at,
    cast(orders.created_at as date)            as order_date
from {{ ref('stg_orders') }} as orders
left join {{ ref('int_order_payments') }} as payments
    on payments.order_id = orders.order_id
