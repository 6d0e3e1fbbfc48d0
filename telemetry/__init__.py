"""Windowed HDR latency histograms, mergeable across processes, shared by the apps that record durations.

It lives at the top level, beside `apps/` and `hftplatform/`, because two apps record into it (the order
book's pipeline stages, the tiers app's HTTP requests) and neither may import the other or `hftplatform`.
It imports no app and no part of `hftplatform` (an import-linter contract says so); only `configured`
touches Django, to read the settings. Each app keeps a thin wrapper that names its series.

- `layout`: slots, windows, Prometheus buckets and the Redis key layout.
- `recorder`: the per-process recorder (cheap `record`, a background `flush` into a store).
- `stores`: where flushed slots live: process memory (embedded) or Redis (shared by every process).
- `windows`: merging slots into 1 m / 5 m / 1 h summaries, and reading the Prometheus counters.
"""
