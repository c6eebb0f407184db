-- One row per order_date that has at least one order (no gap-filling).
-- Revenue is the order amount, by order status (not by payment date).
select
    order_date,
    count(*)                                                                          as orders,
    sum(case when status = 'returned' then 1 else 0 end)                              as returned_orders,
    cast(sum(amount) as decimal(18, 2))                                               as gross_revenue,
    cast(sum(case when status <> 'returned' then amount else 0 end) as decimal(18, 2)) as net_revenue,
    cast(sum(case when status = 'returned' then amount else 0 end) as decimal(18, 2))  as refunds
from {{ ref('fct_orders') }}
group by order_date
