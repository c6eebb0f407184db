{{ config(tags=['pii']) }}

-- One row per CRM account (latest version of each id).
with source as (
    select
        cast(id as bigint)              as account_id,
        cast(customer_id as bigint)     as customer_id,
        cast(company_name as varchar)   as company_name,
        cast(segment as varchar)        as segment,
        cast(account_owner as varchar)  as account_owner,
        cast(created_at as timestamp)   as created_at,
        cast(updated_at as timestamp)   as updated_at
    from {{ source('crm', 'accounts') }}
),

versions as (
    select
        source.*,
        row_number() over (partition by account_id order by updated_at desc) as version_rank
    from source
)

select account_id, customer_id, company_name, segment, account_owner, created_at, updated_at
from versions
where version_rank = 1
