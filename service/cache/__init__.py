"""Redis: the hot ranking (ZSETs + goal snapshots), rebuilt from SQLite, never the truth."""
