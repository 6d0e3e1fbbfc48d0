"""`manage.py runmicro`."""
