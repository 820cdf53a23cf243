"""Helpers shared by the client's tests (the tests themselves are tests/test_client*.py)."""
