-- Customer attributes from the latest reference snapshot, typed.
with

source as (

    select * from {{ source('bronze', 'customers') }}

),

renamed as (

    select
        cast(customer_id as string) as customer_id,
        cast(x_location as double) as x_location,
        cast(y_location as double) as y_location,
        nullif(trim(region), '') as region,
        nullif(trim(segment), '') as segment,
        snapshot_date
    from source

)

select * from renamed
