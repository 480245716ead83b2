{#-
  A label can never be available before the transaction it labels: rows where `column_name`
  (a label timestamp) is earlier than `transaction_time` fail. Nulls (no label yet) pass.
-#}
{% test label_not_before_transaction(model, column_name, transaction_time='tx_datetime') %}
select *
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} < {{ transaction_time }}
{% endtest %}
