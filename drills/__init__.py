"""Reliability drills for the MiniTwit stack: load, read-back verification, report.

See drills/README.md and docs/reliability.md.
"""
