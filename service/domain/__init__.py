"""The pure core: goal model and lifecycle, inputs, goal types, ledger hashing.

Nothing in this package performs I/O or imports sqlite3, redis, rq or fastapi;
every function is a computation over values, with time passed in.
"""
