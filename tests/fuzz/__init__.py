"""Fuzz suites: the frame generator, the parsers (pytest and atheris), the real server."""
