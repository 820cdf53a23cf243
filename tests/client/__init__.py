"""The client's tests: tests/client/test_<module>.py, plus helpers.py (shared by them)."""
