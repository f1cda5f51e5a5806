"""Subscribers, digests and their delivery ledger (not built yet)."""
