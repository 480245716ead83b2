-- Terminal attributes from the latest reference snapshot, typed.
with

source as (

    select * from {{ source('bronze', 'terminals') }}

),

renamed as (

    select
        cast(terminal_id as string) as terminal_id,
        cast(x_location as double) as x_location,
        cast(y_location as double) as y_location,
        nullif(trim(region), '') as region,
        nullif(trim(merchant_category), '') as merchant_category,
        try_cast(nullif(trim(first_active_date), '') as date) as first_active_date,
        snapshot_date
    from source

)

select * from renamed
