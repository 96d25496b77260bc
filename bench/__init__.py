"""MiniTwit load generator: replays the ITU simulator scenario and seeds/scales PostgreSQL."""
