"""Landing files into validated bronze Delta tables.

``simulate`` (the transaction simulator that writes landing files), ``ingest`` (one landing file:
parse, validate, bronze, quarantine, ops log), ``reference`` (optional customer and terminal
snapshots), ``expectations`` and ``suites/`` (the landing contract as Great Expectations suites),
``backfill`` (a range of days through ingestion, dbt and features in one Spark session).
"""
