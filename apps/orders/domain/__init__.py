"""Pure domain code of the orders app (no Django, Channels, Celery or Redis)."""
