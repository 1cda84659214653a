"""Shared helpers for tests: launching real toolkiln servers and finding the npm clients."""
