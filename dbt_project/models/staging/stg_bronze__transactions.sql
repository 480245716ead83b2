-- One row per transaction, typed and renamed; the latest delivery wins if an id repeats.
with

source as (

    select * from {{ source('bronze', 'transactions') }}

),

ranked as (

    select
        *,
        row_number() over (partition by transaction_id order by ingested_at desc, line_number) as delivery_rank
    from source

),

renamed as (

    select
        cast(transaction_id as string) as transaction_id,
        cast(tx_datetime as timestamp) as tx_datetime,
        cast(tx_datetime as date) as tx_date,
        cast(customer_id as string) as customer_id,
        cast(terminal_id as string) as terminal_id,
        cast(tx_amount as double) as tx_amount,
        batch_date,
        ingested_at as source_ingested_at
    from ranked
    where delivery_rank = 1

)

select * from renamed
