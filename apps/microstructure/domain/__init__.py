"""Pure domain code of the microstructure app (no Django, Channels, Celery or Redis)."""
