"""Fakes of remote providers for tests (127.0.0.1 only)."""
