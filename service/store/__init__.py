"""SQLite: the durable truth. Connections, migrations, goals, ledger and outbox."""
