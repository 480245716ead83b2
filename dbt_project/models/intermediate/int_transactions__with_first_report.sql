-- Each transaction with the earliest fraud report that could be about it (reported at or after the
-- transaction). A report timestamped before its transaction is impossible and is ignored here; it
-- stays visible in stg_bronze__fraud_reports.
-- report_known_at: when the system could know the report, the end of the day its file covers
-- (reports land as one file per day; ingestion keeps reported_at inside that day). Every
-- report-based feature uses this time, never reported_at.
with

transactions as (

    select * from {{ ref('stg_bronze__transactions') }}

),

reports as (

    select * from {{ ref('stg_bronze__fraud_reports') }}

),

joined as (

    select
        transactions.transaction_id,
        transactions.tx_datetime,
        transactions.tx_date,
        transactions.customer_id,
        transactions.terminal_id,
        transactions.tx_amount,
        transactions.batch_date,
        transactions.source_ingested_at,
        case when reports.reported_at >= transactions.tx_datetime then reports.reported_at end as reported_at,
        case
            when reports.reported_at >= transactions.tx_datetime
                then greatest(cast(date_add(reports.report_batch_date, 1) as timestamp), reports.reported_at)
        end as report_known_at
    from transactions
    left join reports
        on transactions.transaction_id = reports.transaction_id

)

select * from joined
