"""The in-service latency suite (``python -m benchmarks --only latency-in-service``).

The code lives in ``benchmarks.latency`` beside the end-to-end rows (its own section
there); this module only registers it, one suite per module.
"""

from benchmarks.latency import IN_SERVICE_SUITE as SUITE

__all__ = ["SUITE"]
