"""Order books: instruments, venues, connectors, book engine, bus, hub, snapshot and delta APIs (issue 3)."""
