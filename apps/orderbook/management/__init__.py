"""Management commands of the orderbook app."""
