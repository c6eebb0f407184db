-- Ephemeral: inlined as a CTE into the marts that use it, never a relation.
{{ config(materialized='ephemeral') }}

-- One row per campaign and spend day (the grain of stg_ad_spend, summed in
-- case a campaign ever has several spend records on one day).
select
    campaign_id,
    spend_date,
    cast(sum(spend) as decimal(18, 2)) as spend,
    sum(impressions)                   as impressions,
    sum(clicks)                        as clicks
from {{ ref('stg_ad_spend') }}
group by campaign_id, spend_date
