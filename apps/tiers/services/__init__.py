"""Use cases of the tiers app: key resolution and admission, rate limiting, usage metering, tier changes."""
