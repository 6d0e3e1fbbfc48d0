"""Tests of the orderbook app."""
