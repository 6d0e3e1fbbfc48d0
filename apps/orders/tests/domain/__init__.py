"""Database-free tests of the orders domain: state machine, validation, matching, fees, balances."""
