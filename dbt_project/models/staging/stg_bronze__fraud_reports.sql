-- One row per reported transaction: the earliest report counts (that is when the label became known).
with

source as (

    select * from {{ source('bronze', 'fraud_reports') }}

),

ranked as (

    select
        *,
        row_number() over (partition by transaction_id order by reported_at, ingested_at) as report_rank
    from source

),

renamed as (

    select
        cast(transaction_id as string) as transaction_id,
        cast(reported_at as timestamp) as reported_at,
        batch_date as report_batch_date,
        ingested_at as report_ingested_at
    from ranked
    where report_rank = 1

)

select * from renamed
