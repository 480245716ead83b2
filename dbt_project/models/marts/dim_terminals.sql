-- One row per terminal seen in transactions or in the reference snapshot, with activity bounds.
with

transactions as (

    select * from {{ ref('stg_bronze__transactions') }}

),

terminals as (

    select * from {{ ref('stg_bronze__terminals') }}

),

activity as (

    select
        terminal_id,
        min(tx_datetime) as first_tx_at,
        max(tx_datetime) as last_tx_at,
        count(*) as nb_transactions
    from transactions
    group by terminal_id

),

final as (

    select
        coalesce(terminals.terminal_id, activity.terminal_id) as terminal_id,
        terminals.region,
        terminals.merchant_category,
        terminals.x_location,
        terminals.y_location,
        terminals.first_active_date,
        activity.first_tx_at,
        activity.last_tx_at,
        coalesce(activity.nb_transactions, 0) as nb_transactions,
        terminals.terminal_id is not null as in_reference
    from terminals
    full outer join activity on terminals.terminal_id = activity.terminal_id

)

select * from final
