"""Benchmarks of vmv-sync: the workshop fan-out harness (``python -m bench.fanout``) and friends.

A package so the harness's modules import each other; ``bench_storage.py`` and
``bench_reconnect.py`` stay runnable as plain scripts.
"""
