{{ config(tags=['pii']) }}

-- One row per customer, with CRM account fields (null when the customer has no
-- account) and lifetime order figures.
with accounts as (
    -- at most one account per customer, so the join can never fan out
    select
        stg_accounts.*,
        row_number() over (partition by customer_id order by updated_at desc, account_id desc) as account_rank
    from {{ ref('stg_accounts') }} as stg_accounts
),

customer_orders as (
    select
        customer_id,
        count(*)                                                        as lifetime_orders,
        -- value excludes returned orders (same rule as net revenue)
        sum(case when status <> 'returned' then amount else 0 end)     as lifetime_value,
        min(ordered_at)                                                 as first_ordered_at,
        max(ordered_at)                                                 as last_ordered_at
    from {{ ref('fct_orders') }}
    group by customer_id
)

select
    customers.customer_id,
    customers.first_name,
    customers.last_name,
    customers.email,
    customers.country,
    customers.created_at,
    accounts.account_id,
    accounts.company_name,
    accounts.segment,
    accounts.account_owner,
    coalesce(customer_orders.lifetime_orders, 0)                        as lifetime_orders,
    cast(coalesce(customer_orders.lifetime_value, 0) as decimal(18, 2)) as lifetime_value,
    customer_orders.first_ordered_at,
    customer_orders.last_ordered_at
from {{ ref('stg_customers') }} as customers
left join accounts
    on accounts.customer_id = customers.customer_id
    and accounts.account_rank = 1
left join customer_orders
    on customer_orders.customer_id = customers.customer_id
