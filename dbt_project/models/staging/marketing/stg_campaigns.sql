-- One row per campaign (latest version of each id).
with source as (
    select
        cast(id as bigint)              as campaign_id,
        cast(name as varchar)           as campaign_name,
        cast(channel as varchar)        as channel,
        cast(budget as decimal(18, 2))  as budget,
        cast(start_date as date)        as start_date,
        cast(end_date as date)          as end_date,
        cast(created_at as timestamp)   as created_at,
        cast(updated_at as timestamp)   as updated_at
    from {{ source('marketing', 'campaigns') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by campaign_id order by updated_at desc) as version_rank
    from source
)

select campaign_id, campaign_name, channel, budget, start_date, end_date, created_at, updated_at
from versions
where version_rank = 1
