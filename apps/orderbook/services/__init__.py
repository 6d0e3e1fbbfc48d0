"""Use cases and I/O of the orderbook app: bus, hub, publisher, feed runners."""
