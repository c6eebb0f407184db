-- One row per payment, with the context of its order from core's fct_orders.
select
    payments.payment_id,
    payments.order_id,
    orders.customer_id,
    payments.method,
    methods.method_label,
    payments.amount,
    payments.created_at                 as paid_at,
    cast(payments.created_at as date)   as payment_date,
    orders.status                       as order_status,
    orders.order_date
from {{ ref('stg_payments') }} as payments
-- inner join: a payment whose order is not loaded yet waits for the next run
-- (the relationships test on stg_payments.order_id flags it if it persists)
inner join {{ ref('fct_orders') }} as orders
    on orders.order_id = payments.order_id
left join {{ ref('payment_methods') }} as methods
    on methods.method = payments.method
