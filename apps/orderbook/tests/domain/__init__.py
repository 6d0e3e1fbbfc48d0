"""Database-free tests of the orderbook domain."""
