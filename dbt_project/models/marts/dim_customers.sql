-- One row per customer seen in transactions or in the reference snapshot, with activity bounds.
-- Small (thousands of rows): rebuilt as a table each run. Home coordinates are coarsened to a 10x10
-- cell (the exact ones stay in the bronze reference snapshot, which only the pipeline reads).
with

transactions as (

    select * from {{ ref('stg_bronze__transactions') }}

),

customers as (

    select * from {{ ref('stg_bronze__customers') }}

),

activity as (

    select
        customer_id,
        min(tx_datetime) as first_tx_at,
        max(tx_datetime) as last_tx_at,
        count(*) as nb_transactions
    from transactions
    group by customer_id

),

final as (

    select
        coalesce(customers.customer_id, activity.customer_id) as customer_id,
        customers.region,
        customers.segment,
        -- the home coordinates are personal data: the mart keeps only the 10x10 cell they fall in
        cast(floor(customers.x_location / 10) * 10 as int) as home_cell_x,
        cast(floor(customers.y_location / 10) * 10 as int) as home_cell_y,
        activity.first_tx_at,
        activity.last_tx_at,
        coalesce(activity.nb_transactions, 0) as nb_transactions,
        customers.customer_id is not null as in_reference
    from customers
    full outer join activity on customers.customer_id = activity.customer_id

)

select * from final
