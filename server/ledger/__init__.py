"""The usage ledger: one record per request, written ahead to a local spool, then batched
into SQLite or PostgreSQL by a background writer."""
