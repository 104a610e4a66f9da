"""Load benchmark for `ved serve`: N requests for n=16 at C concurrent connections on loopback.

    python benchmarks/serve_load.py                      # 2,000 requests, 32 connections
    python benchmarks/serve_load.py --requests 200       # a quick look

Starts its own server (a real uvicorn process) on a free loopback port, and stops it.
Reports throughput, p50/p99 latency and errors. Target: 0 errors, p99 under 150 ms on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time

import httpx

CAPTIONS = ["three plus two", "one plus two plus one plus one", "min nine five seven", "this is a black five on a white background"]


async def load(port: int, requests: int, concurrency: int) -> tuple[list[float], int]:
    """`concurrency` keep-alive connections; a bare asyncio client, so the 2 cores go to the server."""
    latencies, errors = [], 0
    queue = iter(range(requests))

    async def worker():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in queue:
                body = json.dumps({"caption": CAPTIONS[i % len(CAPTIONS)], "n": 16, "seed": i}).encode()
                head = (f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                t0 = time.perf_counter()
                writer.write(head + body)
                status = (await reader.readline()).split()[1]
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                payload = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                errors += not (status == b"200" and len(json.loads(payload)["images"]) == 16)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="(default: 2000)")
    p.add_argument("--concurrency", type=int, default=32, help="(default: 32)")
    p.add_argument("--json", help="write the numbers here too")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ved", "serve", "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/api/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        asyncio.run(load(port, 50, 4))  # warm-up
        t0 = time.perf_counter()
        latencies, errors = asyncio.run(load(port, args.requests, args.concurrency))
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()
    latencies.sort()
    result = {"requests": args.requests, "concurrency": args.concurrency, "errors": errors,
              "throughput_rps": args.requests / wall, "p50_ms": 1000 * statistics.median(latencies),
              "p90_ms": 1000 * latencies[int(0.90 * (len(latencies) - 1))],
              "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))], "max_ms": 1000 * latencies[-1]}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
