"""Browser end-to-end tests for MiniTwit (see README.md)."""
