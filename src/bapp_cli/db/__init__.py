"""Schema, types, engine, transactions, locks and Alembic glue.

Knows nothing about flags or output. Instants are aware UTC in Python and stored as UTC on both
backends; money is Numeric(10,2); closed value sets are CHECK constraints; history is never deleted.
"""
