"""Tests of the project wiring: pages, admin and API docs served through the real ASGI stack."""
