"""The fan-out benchmark's bare baseline: a `websockets` server that `broadcast()`s each delta to every subscriber.

Run by `bench/fanout.py` as `python bench/fanout_bare.py --port P --seed S`. Subscribers connect to `/stream`;
the benchmark drives it over `/control` with `{"op": "run", "rate": R, "count": N}`: the server then makes N
deltas at R per second itself (the same seeded market as the other servers), stamps each with the time just
before encoding it, broadcasts it, and answers with `[sequence, publish ns, publish-to-last-send ns]` per delta.
`broadcast()` writes to every transport before it returns, so its return is the last send.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fanout_events import BenchMarket, delta_json


class Broadcaster:
    def __init__(self, seed: int) -> None:
        self.subscribers: set[ServerConnection] = set()
        self.deltas = BenchMarket(seed).deltas()
        self.seq = 0

    async def handle(self, ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/control":
            await self.control(ws)
            return
        self.subscribers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self.subscribers.discard(ws)

    async def control(self, ws: ServerConnection) -> None:
        async for raw in ws:
            command = orjson.loads(raw)
            if command.get("op") == "run":
                events = await self.publish(float(command["rate"]), int(command["count"]))
                await ws.send(orjson.dumps({"events": events, "subscribers": len(self.subscribers)}).decode())

    async def publish(self, rate: float, count: int) -> list[tuple[int, int, int]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        records = []
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.seq += 1
            publish_ns = time.time_ns()
            broadcast(self.subscribers, delta_json(next(self.deltas), self.seq, publish_ns), text=True)
            records.append((self.seq, publish_ns, time.time_ns() - publish_ns))
        return records


async def main(port: int, seed: int) -> None:
    broadcaster = Broadcaster(seed)
    async with serve(
        broadcaster.handle,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        max_size=None,
        backlog=4096,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.seed))
