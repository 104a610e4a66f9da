"""Load benchmark for `ved serve`: N requests for n=16 at C concurrent connections on loopback.

    python benchmarks/serve_load.py                      # 2,000 requests, 32 connections
    python benchmarks/serve_load.py --requests 200       # a quick look
    python benchmarks/serve_load.py --malformed 0.1      # 10% of requests are a client's mistakes
    python benchmarks/serve_load.py --against HEAD~5     # that revision's server too, and the ratio

Starts its own server (a real uvicorn process) on a free loopback port, and stops it.
Reports throughput, p50/p99 latency (of good requests) and errors. Target: 0 errors, p99 under
150 ms on 2 CPU cores. With --malformed, every bad request must get a 4xx (never a 5xx), and no
good request may fail, however the connections it shares were used before. A server whose queue is
full may answer 503 with Retry-After: counted as `busy`, apart from errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import revisions

CAPTIONS = [
    "three plus two",
    "one plus two plus one plus one",
    "min nine five seven",
    "this is a black five on a white background",
]


# A client's mistakes, each of which once gave a 500 or a dropped connection (bodies as sent on the
# wire, one per line; tests/test_fuzz.py sends the same), and one body over the server's limit.
MALFORMED = [
    *(Path(__file__).parents[1] / "tests" / "data" / "malformed-bodies.txt").read_bytes().splitlines(),
    b'{"caption": "' + b"x" * 70_000 + b'"}',
]


async def load(port: int, requests: int, concurrency: int, malformed: float = 0.0, seed: int = 0) -> dict:
    """`concurrency` keep-alive connections; a bare asyncio client, so the 2 cores go to the server.
    A connection the server closes (it may, after refusing a body it did not read) is reopened."""
    latencies, counts = (
        [],
        {"good": 0, "good_failed": 0, "bad": 0, "bad_4xx": 0, "5xx": 0, "busy": 0, "transport_errors": 0},
    )
    queue = iter(range(requests))
    rng = random.Random(seed)
    plan = [rng.random() < malformed for _ in range(requests)]

    async def worker():
        reader = writer = None
        for i in queue:
            bad = plan[i]
            body = (
                MALFORMED[i % len(MALFORMED)]
                if bad
                else json.dumps({"caption": CAPTIONS[i % len(CAPTIONS)], "n": 16, "seed": i}).encode()
            )
            head = (
                f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            counts["bad" if bad else "good"] += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head + body)
                status = (await reader.readline()).split()[1]
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    close |= name.lower() == "connection" and value.strip().lower() == "close"
                payload = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                counts["transport_errors"] += 1
                counts["good_failed"] += not bad
                writer, reader = None, None
                continue
            if close:
                writer.close()
                writer = reader = None
            counts["busy"] += status == b"503"
            counts["5xx"] += status.startswith(b"5") and status != b"503"
            if bad:
                counts["bad_4xx"] += status.startswith(b"4")
            elif status != b"503":
                latencies.append(time.perf_counter() - t0)
                counts["good_failed"] += not (status == b"200" and len(json.loads(payload)["images"]) == 16)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, **counts}


def measure(args, env: dict) -> dict:
    """Start a server with `env`'s code on a free port, warm it up, load it, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ved", "serve", "--port", str(port), *args.serve_options],
        stdout=subprocess.DEVNULL,
        env=env,
    )
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
        run = asyncio.run(load(port, args.requests, args.concurrency, args.malformed))
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()
    latencies = sorted(run.pop("latencies"))
    return {
        **run,
        "errors": run["good_failed"] + run["5xx"] + (run["bad"] - run["bad_4xx"]),
        "throughput_rps": args.requests / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * latencies[int(0.90 * (len(latencies) - 1))],
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="(default: 2000)")
    p.add_argument("--concurrency", type=int, default=32, help="(default: 32)")
    p.add_argument(
        "--malformed",
        type=float,
        default=0.0,
        help="share of requests that are a client's mistakes (default: 0)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        help="ved serve --precision for every server (default: each code's own default)",
    )
    revisions.add_options(p, "load a server")
    args = p.parse_args()
    args.serve_options = ["--precision", args.precision] if args.precision else []
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "malformed": args.malformed,
        **revisions.machine(),
    }
    if args.against:
        with revisions.checkout(args.against) as tree:
            result[args.against] = {
                "code": revisions.describe(args.against),
                **measure(args, revisions.env_for(tree)),
            }
    result["current"] = measure(args, revisions.env_for(None))
    if args.against:
        then, now = result[args.against], result["current"]
        result["ratio_current_over_revision"] = {
            "throughput": now["throughput_rps"] / then["throughput_rps"],
            "p99": now["p99_ms"] / then["p99_ms"],
        }
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
