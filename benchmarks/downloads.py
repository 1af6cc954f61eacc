"""Scenario 5: result downloads: ``client.download`` vs raw aiohttp streaming of the same files.

Setup (benchmark process): one noise PNG (incompressible, so result files stay large) is uploaded
to the sandbox's Files API, ``K`` tasks edit it, and every result file is downloaded once to warm
the sandbox's render cache, so no contestant pays for rendering.

Each measured run happens in a fresh worker process (``python -m benchmarks.downloads --worker
...``) so that peak RSS is that run's alone: a sampler thread reads ``/proc/self/statm`` every
millisecond and the peak growth over the RSS just before the first download is reported.
Contestants alternate over the rounds; throughput is bytes written to disk per wall second.

- ``aiohttp raw``: ``session.get(url)``, ``iter_chunked(64 KiB)``, ``file.write`` per chunk
  (what a hand-written loop does);
- ``aiohttp raw + fsync``: the same, plus ``os.fsync`` before closing each file;
- ``sdk client.download``: ``await client.download(task, dest_dir)`` per task (temporary file,
  image probe, rename into place), compared with ``aiohttp raw``;
- ``sdk client.download(durable=True)``: the same plus an fsync of each file and its folder (what
  batch runs use), compared with ``aiohttp raw + fsync``: like with like;
- ``sdk client.download, every file twice``: twice the bytes through the same 8 slots, for the
  memory check only: its peak RSS must match the single run's (memory does not grow with bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp

from evolink_async import EvolinkClient, QwenImageEdit

from ._common import Scenario, median, paired_ratio, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
CHUNK = 64 * 1024
CONCURRENCY = 8
_REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
#: Worker modes: (row label, the mode it is compared with).
MODES = {
    "raw": ("aiohttp raw", "raw"),
    "raw_fsync": ("aiohttp raw + fsync", "raw_fsync"),
    "sdk": ("sdk client.download", "raw"),
    "sdk_durable": ("sdk client.download(durable=True)", "raw_fsync"),
    "sdk_twice": ("sdk client.download, every file twice", "sdk"),
}


def noise_png(size: int, seed: int = 1) -> bytes:
    """An RGBA PNG of random pixels (zlib cannot shrink it, so derived results stay as large)."""
    rng_bytes = _random_bytes(size * size * 4, seed)
    stride = size * 4
    raw = b"".join(b"\x00" + rng_bytes[y * stride : (y + 1) * stride] for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def _random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


# --- the worker process -----------------------------------------------------------------------


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._halt = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, self.rss())


async def _raw(manifest: dict[str, Any], dest: Path, *, fsync: bool = False) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession() as session:

        async def one(task: dict[str, Any]) -> None:
            async with gate:
                folder = dest / task["id"]
                folder.mkdir()
                for i, url in enumerate(task["results"]):
                    async with session.get(url) as resp:
                        resp.raise_for_status()
                        with open(folder / f"{i}.png", "wb") as f:
                            async for chunk in resp.content.iter_chunked(CHUNK):
                                f.write(chunk)
                            if fsync:
                                f.flush()
                                os.fsync(f.fileno())

        async with asyncio.TaskGroup() as group:
            for task in manifest["tasks"]:
                group.create_task(one(task))


async def _sdk(manifest: dict[str, Any], dest: Path, *, durable: bool = False, repeat: int = 1) -> None:
    from evolink_async._models.converter import structure_task

    gate = asyncio.Semaphore(CONCURRENCY)
    tasks = [structure_task(body) for body in manifest["tasks"]]
    async with EvolinkClient(api_key=manifest["api_key"], base_url=manifest["base_url"]) as client:

        async def one(task: Any) -> None:
            async with gate:
                folder = dest / task.id
                folder.mkdir(exist_ok=True)
                await client.download(task, folder, durable=durable)

        async with asyncio.TaskGroup() as group:
            for _ in range(repeat):
                for task in tasks:
                    group.create_task(one(task))


def worker(mode: str, manifest_path: str, dest: str) -> dict[str, Any]:
    manifest = json.loads(Path(manifest_path).read_text())
    dest_dir = Path(dest)
    sampler = _Sampler()
    before = sampler.rss()
    sampler.start()
    started = time.perf_counter()
    if mode.startswith("sdk"):
        asyncio.run(_sdk(manifest, dest_dir, durable=mode == "sdk_durable", repeat=2 if mode == "sdk_twice" else 1))
    else:
        asyncio.run(_raw(manifest, dest_dir, fsync=mode == "raw_fsync"))
    seconds = time.perf_counter() - started
    sampler.stop()
    files = [p for p in dest_dir.rglob("*") if p.is_file()]
    return {
        "bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        "seconds": seconds,
        "rss_before": before,
        "rss_peak": sampler.peak,
    }


# --- the scenario -----------------------------------------------------------------------------


def _run_worker(mode: str, manifest_path: Path) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix=f"evolink-bench-{mode}-"))
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.downloads",
                "--worker",
                mode,
                "--manifest",
                str(manifest_path),
                "--dest",
                str(dest),
            ],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{mode} download worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(dest, ignore_errors=True)


async def run(quick: bool) -> Scenario:
    k, size, rounds = (8, 512, 1) if quick else (40, 1000, 5)
    time_scale = 0.01
    scenario = Scenario("downloads", "5. Result downloads: throughput and peak RSS")
    png = noise_png(size)
    scenario.params = {
        "tasks": k,
        "result_file_bytes_approx": len(png),
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "chunk_bytes": CHUNK,
    }
    async with BenchServer(
        time_scale=time_scale, seed=9, estimated_times={MODEL: 30.0}, duration_spread=[1.0, 1.0]
    ) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            payload = {"base64_data": base64.b64encode(png).decode(), "file_name": "noise.png"}
            async with session.post(f"{server.files_base_url}/api/v1/files/upload/base64", json=payload) as resp:
                uploaded = await resp.json()
                if not uploaded.get("success"):
                    raise RuntimeError(f"upload failed: {uploaded}")
            file_url = uploaded["data"]["file_url"]
            async with EvolinkClient(api_key=server.api_key, base_url=server.base_url) as client:
                submitted = [
                    await client.images.submit(QwenImageEdit(prompt="invert", image_urls=[file_url])) for _ in range(k)
                ]
                done = await asyncio.gather(*(client.tasks.wait(t, timeout=120) for t in submitted))
            # Warm the sandbox's render cache: no contestant pays for rendering.
            for task in done:
                for url in task.results:
                    async with session.get(url) as resp:
                        await resp.read()
        manifest = {
            "api_key": server.api_key,
            "base_url": server.base_url,
            "tasks": [dict(task.raw) for task in done],
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(manifest, f)
            manifest_path = Path(f.name)
        try:
            samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for r in range(rounds):
                modes = list(MODES)
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    samples[mode].append(await asyncio.to_thread(_run_worker, mode, manifest_path))
        finally:
            manifest_path.unlink(missing_ok=True)

    def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "mib_per_s": median(r["bytes"] / r["seconds"] / MIB for r in runs),
            "peak_growth_mib": median((r["rss_peak"] - r["rss_before"]) / MIB for r in runs),
            "bytes": runs[0]["bytes"],
            "files": runs[0]["files"],
        }

    def ratio(mode: str, baseline: str) -> float:
        return paired_ratio(
            [r["bytes"] / r["seconds"] for r in samples[mode]], [r["bytes"] / r["seconds"] for r in samples[baseline]]
        )

    scenario.columns = ["contestant", "throughput MiB/s (median)", "x baseline", "peak RSS growth MiB", "files", "MiB"]
    figures = {mode: summary(runs) for mode, runs in samples.items()}
    for mode, (label, baseline) in MODES.items():
        fig = figures[mode]
        scenario.rows.append(
            {
                "contestant": label,
                "throughput MiB/s (median)": round(fig["mib_per_s"], 1),
                "x baseline": f"{ratio(mode, baseline):.2f} ({MODES[baseline][0]})",
                "peak RSS growth MiB": round(fig["peak_growth_mib"], 1),
                "files": fig["files"],
                "MiB": round(fig["bytes"] / MIB, 1),
            }
        )
        expected = figures["raw"]["bytes"] * (2 if mode == "sdk_twice" else 1)
        if fig["bytes"] != expected:
            scenario.notes.append(f"WARNING: {label} wrote {fig['bytes']} bytes, raw {figures['raw']['bytes']}.")
    scenario.extra["samples"] = samples
    for mode in ("sdk", "sdk_durable"):
        label, baseline = MODES[mode]
        vs_baseline = ratio(mode, baseline)
        scenario.targets.append(
            target(
                f"{label}: throughput vs {MODES[baseline][0]}",
                goal=">= 0.9x",
                value=round(vs_baseline, 2),
                passed=vs_baseline >= 0.9,
            )
        )
    # Flat memory: peak RSS must not grow with the bytes downloaded (twice the files, same peak),
    # and what the SDK holds beyond the raw loop is a fixed buffer per concurrent download (its
    # 512 KiB write batch plus aiohttp's read buffer): at most 1.5 MiB each.
    once, twice = figures["sdk"]["peak_growth_mib"], figures["sdk_twice"]["peak_growth_mib"]
    scenario.targets.append(
        target(
            "sdk: peak RSS growth, twice the files vs once",
            goal=f"<= {once + 2:.1f} MiB (once + 2 MiB)",
            value=round(twice, 1),
            passed=twice <= once + 2,
        )
    )
    per_download = (once - figures["raw"]["peak_growth_mib"]) / CONCURRENCY
    scenario.targets.append(
        target(
            "sdk: peak RSS over raw, per concurrent download",
            goal="<= 1.5 MiB",
            value=round(per_download, 2),
            passed=per_download <= 1.5,
        )
    )
    scenario.notes.append(
        f"{k} tasks with one result each (~{len(png) / MIB:.1f} MiB, incompressible PNG), {CONCURRENCY} tasks"
        " downloading at once, each run in a fresh process writing to a temporary directory on disk."
    )
    return scenario


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.downloads")
    parser.add_argument("--worker", choices=list(MODES), required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--dest", required=True)
    args = parser.parse_args()
    print(json.dumps(worker(args.worker, args.manifest, args.dest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
