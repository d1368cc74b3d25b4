"""Venue protocols, sans-I/O: one module per venue.

Each venue module holds the venue's wire schema (msgspec Structs declaring only
the fields we read), its subscribe/ack messages and its book-sync rule as plain
code; the trio tasks in ``dragonflybot.feed`` only move bytes and events. What
every venue does the same way is written once: the events (``base``), the book
state and the two modes (``book_protocol``), the diff-book sync outline
(``diff_sync``) and its snapshot requests (``requests``).
"""
