"""The message bus between processes: feeds, aggregators and gateways over Redis.

Layers talk through queues; this package makes one kind of queue span
processes and machines. ``codec`` (wire format), ``subjects`` (names),
``sequence`` and ``staleness`` are sans-I/O; ``publisher`` and ``subscriber``
are the trio tasks that own Redis connections (``connection`` builds them).
"""
