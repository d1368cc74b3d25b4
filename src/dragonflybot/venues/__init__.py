"""Venue protocols, sans-I/O: one module per venue.

Each module holds the venue's wire schema (msgspec Structs declaring only the
fields we read), its subscribe/ack messages and its book-sync state machine as
plain code; the trio tasks in ``dragonflybot.feed`` only move bytes and events.
"""
