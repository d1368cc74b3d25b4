"""FIX 4.4 market-data acceptor."""
