"""The retention ledger: one module per group of tables; the only place their SQL lives."""
