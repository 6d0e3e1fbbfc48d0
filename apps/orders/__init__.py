"""Orders, fills, batch entry, paper engine and live venue adapters (issue 6)."""
