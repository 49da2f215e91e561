"""Benchmark: `elmo serve` under load on loopback, against the offline rate measured in the same run.

    .venv/bin/python bench/serve_load.py --models models/sentiment models/encoder
    .venv/bin/python bench/serve_load.py --models models/sentiment --levels 1 8 32 128 --soak 20000 --faults

For each served model (a task model answers POST /predict, an encoder POST /embed with mean
pooling), on real SST-2 test sentences, one text per request:

- offline: the model's own call on all the sentences at once (texts/s, the median of 3 runs), and
  on one sentence at a time (the median and p99 latency over 300); and its ceiling at 32 clients: the
  model's call on batches of 32 sentences in arrival order (the largest batch 32 clients can form)
  with the server's model-thread count (all cores but one), no HTTP;
- under load: ``--levels`` clients at once, each on its own keep-alive connection sending a request
  as soon as the last is answered, ``--requests`` requests per level (at most ``--seconds``):
  texts/s, its ratio to the offline rate, and the p50 / p95 / p99 latency (one client: a blocking
  http.client connection, the others asyncio streams);
- ``--soak N``: N requests at concurrency 32, the server's resident memory before and after;
- ``--faults``: during a load at concurrency 8, malformed bodies, oversized bodies and clients
  that leave mid-request; every fault must get a one-line JSON error (or, for the clients that
  left, nothing), every valid request a 200; then SIGTERM in the middle of a load at concurrency
  32: every request the server began is answered (its log has no request without a status).

The server is ``elmo serve`` in a subprocess (loopback, a free port); the clients are asyncio
streams in this process, so both share the machine's cores. Prints the CPU's features.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SST = REPO.parent / "shared" / "data" / "sst" / "sst2_test.tsv"
SAMPLE = REPO / "data" / "samples" / "sentiment" / "test.tsv"


def sentences(n: int = 2000) -> list[str]:
    """Real sentences: SST-2 test (the shipped sample's where SST is absent)."""
    path = SST if SST.is_file() else SAMPLE
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    texts = [max(r, key=len) for r in rows if r]
    return (texts * (n // len(texts) + 1))[:n]


def offline(directory: str, texts: list[str]) -> dict:
    """The model in ``directory`` alone: ``route``, ``rate`` (texts/s, all at once), ``one_ms`` and
    ``one_p99_ms`` (one text at a time, 300 times), ``by_32`` (texts/s in arrival-order batches of 32
    on the server's thread count)."""
    from pipeline.io import directory_kind

    if directory_kind(directory) == "encoder":
        from pipeline.encoder import Encoder

        model = Encoder.from_pretrained(directory)
        run, route = (lambda xs: [a.mean(1) for a in model.embed(xs)]), "embed"
    else:
        from pipeline.tasks.models import load_task_model

        task_model = load_task_model(directory)
        run, route = task_model.records, "predict"
    run(texts[:50])  # warm: caches, threads
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run(texts)
        times.append(time.perf_counter() - start)
    rate = len(texts) / statistics.median(times)
    one = []
    for t in texts[:300]:
        s = time.perf_counter()
        run([t])
        one.append(1000 * (time.perf_counter() - s))
    one_p99 = statistics.quantiles(one, n=100)[98]
    return {"route": route, "rate": rate, "one_ms": statistics.median(one), "one_p99_ms": one_p99,
            "by_32": batches_of_32(run, texts)}  # fmt: skip


def batches_of_32(run, texts: list[str]) -> float:
    """Texts/s of ``run`` on batches of 32 texts in arrival order with all cores but one (as the
    server's model thread), the median of 3."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            for i in range(0, len(texts), 32):
                run(texts[i : i + 32])
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return len(texts) / statistics.median(times)


class Server:
    def __init__(self, models: list[str], extra: list[str]):
        cmd = [sys.executable, "-m", "pipeline.cli", "serve", *models, "--port", "0", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.log: list[str] = []
        line = self.proc.stderr.readline()
        while line and not line.startswith("serving "):
            line = self.proc.stderr.readline()
        if not line:
            raise SystemExit("elmo serve did not start")
        self.port = int(re.search(r":(\d+) ", line).group(1))
        import threading

        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


async def request(reader, writer, path: str, body: bytes) -> tuple[int, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    got = await reader.readuntil(b"\r\n\r\n")
    status = int(got.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: (\d+)", got).group(1))
    return status, await reader.readexactly(length)


async def load(port: int, path: str, bodies: list[bytes], clients: int, n: int, seconds: float) -> dict:
    """``clients`` closed-loop clients sending ``n`` requests in all (at most ``seconds``)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal sent, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < n and time.perf_counter() < deadline:
                body = bodies[sent % len(bodies)]
                sent += 1
                start = time.perf_counter()
                try:
                    status, _ = await request(reader, writer, path, body)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    return
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)), return_exceptions=True)
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))] if ms else float("nan")

    return {"requests": len(ms), "per_s": len(ms) / wall, "p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
            "statuses": statuses, "errors": errors}  # fmt: skip


async def faults(port: int, path: str, bodies: list[bytes]) -> dict:
    """Faults while valid requests run: each fault's answer, and the valid requests' statuses."""
    answers: list[tuple[str, int, bytes]] = []

    async def one(kind: str, raw: bytes, leave: bool = False) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        if leave:
            writer.close()
            return
        got = await reader.read()
        writer.close()
        status = int(got.split(b" ", 2)[1]) if got else 0
        answers.append((kind, status, got.split(b"\r\n\r\n", 1)[-1]))

    def post(body: bytes, length: int | None = None) -> bytes:
        n = len(body) if length is None else length
        return f"POST {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n".encode() + body

    rng = random.Random(0)
    jobs = [one("malformed", post(b'{"texts": ["a"' + bytes([rng.randrange(256)]))) for _ in range(50)]
    jobs += [one("wrong type", post(b'{"texts": [1, 2]}')) for _ in range(20)]
    jobs += [one("oversized", post(b'{"texts": ["' + b"a " * 600_000 + b'"]}')) for _ in range(10)]
    jobs += [one("left", post(b'{"texts": ["a fine', length=500), leave=True) for _ in range(50)]
    valid = load(port, path, bodies, 8, 2000, 120)
    result, *_ = await asyncio.gather(valid, *jobs)
    one_line = all(s in (400, 413, 422) and b"\n" not in b.strip() and json.loads(b)["error"] for _, s, b in answers)
    return {"valid": result, "faults": len(answers) + 50, "fault_answers_one_line_json": one_line,
            "fault_statuses": sorted({s for _, s, _ in answers})}  # fmt: skip


async def sigterm_mid_load(server: Server, path: str, bodies: list[bytes]) -> dict:
    seen = len(server.log)  # the lines of this phase only
    task = asyncio.create_task(load(server.port, path, bodies, 32, 100_000, 60))
    await asyncio.sleep(2.0)
    server.proc.send_signal(signal.SIGTERM)
    result = await task
    code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait)
    await asyncio.sleep(0.5)  # the log reader's last lines
    handled = [line for line in server.log[seen:] if line.startswith("POST ")]
    unanswered = [line for line in handled if line.split()[2] not in ("200", "503")]
    return {"answered": result["requests"], "statuses": result["statuses"], "cut_connections": result["errors"],
            "server_log_requests": len(handled), "begun_but_unanswered": len(unanswered), "exit": code}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["models/sentiment", "models/encoder"])
    ap.add_argument("--levels", nargs="+", type=int, default=[1, 8, 32, 128])
    ap.add_argument("--requests", type=int, default=3000, help="requests per level (a tenth at concurrency 1)")
    ap.add_argument("--seconds", type=float, default=60, help="at most this long per level")
    ap.add_argument("--soak", type=int, default=0, help="requests of the soak at concurrency 32 (0: none)")
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--serve-args", default="", help="more `elmo serve` flags, e.g. '--max-wait-ms 0'")
    args = ap.parse_args()
    from pipeline.cpu import features_line

    print(features_line())
    texts = sentences()
    for directory in args.models:
        o = offline(directory, texts)
        route, rate, one_ms = o["route"], o["rate"], o["one_ms"]
        print(f"\n{directory} (POST /{route}): offline {rate:,.0f} texts/s all at once; one text {one_ms:.2f} ms "
              f"(p99 {o['one_p99_ms']:.2f} ms: {o['one_p99_ms'] / one_ms:.1f}x, the model alone); "
              f"batches of 32 in arrival order on the server's threads {o['by_32']:,.0f} texts/s "
              f"({o['by_32'] / rate:.0%} of offline: the ceiling at 32 clients)")  # fmt: skip
        body = (lambda t: {"texts": [t], "pool": "mean"}) if route == "embed" else (lambda t: {"texts": [t]})
        bodies = [json.dumps(body(t)).encode() for t in texts]
        server = Server([directory], args.serve_args.split())
        try:
            run_levels(server, route, bodies, args, rate, one_ms)
            if args.soak:
                run_soak(server, route, bodies, args.soak)
            if args.faults:
                print("faults at concurrency 8:", json.dumps(asyncio.run(faults(server.port, f"/{route}", bodies))))
                print(
                    "SIGTERM mid-load at concurrency 32:",
                    json.dumps(asyncio.run(sigterm_mid_load(server, f"/{route}", bodies))),
                )
        finally:
            server.stop()


def one_client(port: int, path: str, bodies: list[bytes], n: int) -> dict:
    """One client with a blocking HTTP connection (http.client): the latency of a lone client
    without the asyncio load generator's own overhead (about 3 ms per request here)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, statuses = [], {}
    start = time.perf_counter()
    for body in bodies[:n]:
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        latencies.append(1000 * (time.perf_counter() - t))
        statuses[r.status] = statuses.get(r.status, 0) + 1
    wall = time.perf_counter() - start
    ms = sorted(latencies)
    pct = {p: ms[min(len(ms) - 1, int(p * len(ms)))] for p in (0.5, 0.95, 0.99)}
    return {"requests": len(ms), "per_s": len(ms) / wall, "p50": pct[0.5], "p95": pct[0.95], "p99": pct[0.99],
            "statuses": statuses, "errors": 0}  # fmt: skip


def run_levels(server: Server, route: str, bodies: list[bytes], args, rate: float, one_ms: float) -> None:
    print("| clients | requests | texts/s | of offline | p50 ms | p95 ms | p99 ms | p99 / one text | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in args.levels:
        n = args.requests // 10 if c == 1 else args.requests
        if c == 1:
            r = one_client(server.port, f"/{route}", bodies, n)
        else:
            r = asyncio.run(load(server.port, f"/{route}", bodies, c, n, args.seconds))
        failed = r["errors"] + sum(v for k, v in r["statuses"].items() if k != 200)
        print(f"| {c} | {r['requests']:,} | {r['per_s']:,.0f} | {r['per_s'] / rate:.0%} | {r['p50']:.1f} | "
              f"{r['p95']:.1f} | {r['p99']:.1f} | {r['p99'] / one_ms:.1f}x | {failed} |")  # fmt: skip


def run_soak(server: Server, route: str, bodies: list[bytes], n: int) -> None:
    before = server.rss_mb()
    r = asyncio.run(load(server.port, f"/{route}", bodies, 32, n, 3600))
    after = server.rss_mb()
    failed = r["errors"] + sum(v for k, v in r["statuses"].items() if k != 200)
    print(f"soak: {r['requests']:,} requests at concurrency 32, {failed} failed, {r['per_s']:,.0f}/s; "
          f"server RSS {before:.0f} -> {after:.0f} MB ({after / before - 1:+.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
