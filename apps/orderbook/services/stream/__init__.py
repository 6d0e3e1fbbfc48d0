"""WebSocket streaming of books: requests, frames, per-connection writers, and the per-process fan-out."""
