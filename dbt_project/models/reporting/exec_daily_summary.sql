-- One row per order_date: the day's orders and net revenue (finance) next to the ad spend of
-- that day (marketing, through the ephemeral int_campaign_days). Untagged on purpose: it reads
-- two tag DAGs' output, so the orchestrator builds it in a later catch-all stage, after both.
with spend as (
    select spend_date, cast(sum(spend) as decimal(18, 2)) as ad_spend
    from {{ ref('int_campaign_days') }}
    group by spend_date
)

select
    revenue.order_date,
    revenue.orders,
    revenue.net_revenue,
    cast(coalesce(spend.ad_spend, 0) as decimal(18, 2)) as ad_spend
from {{ ref('finance_daily_revenue') }} as revenue
left join spend
    on spend.spend_date = revenue.order_date
