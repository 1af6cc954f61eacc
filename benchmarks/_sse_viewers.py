"""Many EventSource-like viewers in a process of their own, so the relay's process measures itself.

``python -m benchmarks._sse_viewers URL COUNT`` opens COUNT connections to URL at once, reads
each event stream to its end, and prints one JSON line: connections, frames read, failures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

import aiohttp


async def _view(http: aiohttp.ClientSession, url: str) -> int:
    frames = 0
    async with http.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        async for line in response.content:
            if line.startswith(b"id: "):
                frames += 1
    return frames


async def main(url: str, count: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        results = await asyncio.gather(*(_view(http, url) for _ in range(count)), return_exceptions=True)
    frames = [r for r in results if isinstance(r, int)]
    print(json.dumps({"connections": count, "frames": sum(frames), "failures": count - len(frames)}), flush=True)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
