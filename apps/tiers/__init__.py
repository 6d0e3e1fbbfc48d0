"""Tiers, customers, API keys, authentication, rate limiting and usage metering."""
