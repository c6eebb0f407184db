-- One row per ad-spend record: a campaign's spend on one day (latest version of each id).
with source as (
    select
        cast(id as bigint)              as ad_spend_id,
        cast(campaign_id as bigint)     as campaign_id,
        cast(spend_date as date)        as spend_date,
        cast(impressions as bigint)     as impressions,
        cast(clicks as bigint)          as clicks,
        cast(spend as decimal(18, 2))   as spend,
        cast(created_at as timestamp)   as created_at,
        cast(updated_at as timestamp)   as updated_at
    from {{ source('marketing', 'ad_spend') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by ad_spend_id order by updated_at desc) as version_rank
    from source
)

select ad_spend_id, campaign_id, spend_date, impressions, clicks, spend, created_at, updated_at
from versions
where version_rank = 1
