"""Rate-limit response headers from a decision: IETF draft fields plus the common X-RateLimit-* trio.

`RateLimit-Policy` lists every policy (`"name";q=<quota>;w=<window s>`); `RateLimit` gives each one's
remaining quota and seconds to reset (`"name";r=<remaining>;t=<s>`). `X-RateLimit-*` describe the
policy closest to running out; `X-RateLimit-Reset` is epoch seconds (GitHub's convention).
"""

from __future__ import annotations

import functools

from .ratelimit import BURST, WINDOWS, Decision, Limits


def _ceil_s(ms: int) -> int:
    return max(0, -(-ms // 1000))


@functools.lru_cache(maxsize=1024)
def policy_header(limits: Limits) -> str:
    items = [f'"{BURST}";q={limits.burst};w={limits.burst_window_s}']
    items += [f'"{name}";q={limits.window_limit(name)};w={length_s}' for name, length_s in WINDOWS]
    return ", ".join(items)


def rate_headers(limits: Limits, decision: Decision) -> dict[str, str]:
    # (name, limit, remaining, seconds to reset) for the burst bucket and every window.
    rows = [(BURST, decision.burst_limit, decision.burst_remaining, _ceil_s(decision.burst_full_in_ms))]
    rows += [(w.name, w.limit, w.remaining, _ceil_s(w.reset_ms - decision.now_ms)) for w in decision.windows]
    if decision.denied_by is not None:
        tightest = next(row for row in rows if row[0] == decision.denied_by)
    else:
        tightest = min(rows, key=lambda row: (row[2] / row[1] if row[1] else 0.0, -row[3]))
    headers = {
        "RateLimit-Policy": policy_header(limits),
        "RateLimit": ", ".join(f'"{name}";r={remaining};t={reset_s}' for name, _, remaining, reset_s in rows),
        "X-RateLimit-Limit": str(tightest[1]),
        "X-RateLimit-Remaining": str(tightest[2]),
        "X-RateLimit-Reset": str(decision.now_ms // 1000 + tightest[3]),
        "X-RateLimit-Policy-Name": tightest[0],
    }
    if not decision.is_allowed:
        headers["Retry-After"] = str(max(1, _ceil_s(decision.retry_after_ms)))
    return headers
