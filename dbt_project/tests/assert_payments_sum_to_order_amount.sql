-- Every order's payments sum exactly to its amount (amounts are decimal(18,2),
-- so equality is exact). Returns the offending orders; an order with no
-- payments at all fails too.
select
    orders.order_id,
    orders.amount,
    coalesce(sum(payments.amount), 0) as paid_amount
from {{ ref('stg_orders') }} as orders
left join {{ ref('stg_payments') }} as payments
    on payments.order_id = orders.order_id
group by orders.order_id, orders.amount
having coalesce(sum(payments.amount), 0) <> orders.amount
