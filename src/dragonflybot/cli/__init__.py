"""Command-line entrypoints (argument parsing and process-level concerns only)."""
