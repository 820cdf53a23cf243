"""Peer servers the fan-out bench compares against."""
