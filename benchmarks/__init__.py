"""Benchmarks: ``python -m benchmarks`` (``make bench``) runs them and records the numbers.

Speed is measured here and never asserted in tests. Each suite is one module
exposing ``SUITE`` (see ``benchmarks.harness.Suite``) and one line in
``benchmarks.__main__.SUITES``; its results land in its own marked section of
docs/performance.md, so suites can be rerun independently.
"""
