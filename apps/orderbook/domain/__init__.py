"""Pure domain code of the orderbook app (no Django, Channels, Celery or Redis)."""
