"""Pure protocol logic of each venue: parse, synchronise, verify; no sockets, no clock."""
