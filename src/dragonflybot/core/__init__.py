"""Pure, I/O-free core: exact fixed-point numbers, venue books and the top-N merge."""
