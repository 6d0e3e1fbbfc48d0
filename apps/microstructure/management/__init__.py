"""Management commands of the microstructure app."""
