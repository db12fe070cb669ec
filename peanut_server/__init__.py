"""PEANUT: remove objects from video by describing them.

This package top level stays light (no numpy, no torch) because the thin
client (peanut_server.client) and the NLE plugins import it.
"""

__version__ = "0.1.0"
API_VERSION = "peanut.v1"
