"""Market microstructure metrics from live books and trades (issue 5)."""
