"""`manage.py runpaper`."""
