-- One row per campaign (every campaign, even with no spend or orders yet).
with spend as (
    select
        campaign_id,
        count(*)          as spend_days,
        sum(spend)        as spend,
        sum(impressions)  as impressions,
        sum(clicks)       as clicks
    from {{ ref('int_campaign_days') }}
    group by campaign_id
),

attributed as (
    -- last-touch attribution via orders.campaign_id; returned orders earn nothing
    select
        campaign_id,
        count(*)     as attributed_orders,
        sum(amount)  as attributed_revenue
    from {{ ref('fct_orders') }}
    where campaign_id is not null
      and status <> 'returned'
    group by campaign_id
),

performance as (
    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.budget,
        campaigns.start_date,
        campaigns.end_date,
        coalesce(spend.spend_days, 0)                                       as spend_days,
        cast(coalesce(spend.spend, 0) as decimal(18, 2))                    as spend,
        coalesce(spend.impressions, 0)                                      as impressions,
        coalesce(spend.clicks, 0)                                           as clicks,
        coalesce(attributed.attributed_orders, 0)                           as attributed_orders,
        cast(coalesce(attributed.attributed_revenue, 0) as decimal(18, 2))  as attributed_revenue
    from {{ ref('stg_campaigns') }} as campaigns
    left join spend
        on spend.campaign_id = campaigns.campaign_id
    left join attributed
        on attributed.campaign_id = campaigns.campaign_id
)

select
    performance.*,
    -- null when nothing was spent yet; rounded to 4 places so both warehouses agree
    cast(round(attributed_revenue / nullif(spend, 0), 4) as decimal(18, 4)) as roas
from performance
