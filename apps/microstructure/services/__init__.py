"""Microstructure services: live windows per process, the recorder of trades and bars, history reads."""
