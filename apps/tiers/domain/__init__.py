"""Pure tier rules: rate-limit arithmetic, feature ladder, API-key header parsing, IP allow-lists."""
