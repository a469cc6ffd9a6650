"""Several robots on one policy server: per-client chunk latency and fairness.

    python -m policy.serving.bench_clients [--clients 1,2,4,8] [--seconds 10] [--delay-ms 45]
    python -m policy.serving.bench_clients --runner wam      # sim-tiny, random weights
    python -m policy.serving.bench_clients --runner wam --batch 1,8   # without, then with batching

Starts one real server process on loopback (the numpy testing runner with `--delay-ms` of
stand-in inference, about a sim-tiny chunk in policy.bench; or the WAM itself), then for each
N runs N clients at once, each its own PolicyClient on its own thread, each sending the next
observation (three 240x320 views, like the sim's cameras) as soon as its chunk arrives
(closed loop, the hardest case for a 10 Hz robot). Reports per N: chunks/s in all, per-client
latency p50 / p95 (the worst client's), and fairness = the fewest / the most chunks any client
got (1.0 = even). The server runs one job at a time, round-robin across clients, so latency
should grow ~N x the inference time and fairness stay near 1. `--batch 1,8` repeats everything
against a server started with each `--batch` value (policy.server: simultaneous requests of
different clients sampled in one pass; only runners with infer_batch, i.e. the WAM, batch) and
reports the mean batch size the replies carried. Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time

import numpy as np

from policy.serving.process import ServerProcess
from policy.wire.client import PolicyClient
from policy.wire.netutil import free_port
from policy.wire.types import Observation

CAMERAS = ["head", "left_wrist", "right_wrist"]


def run_clients(address: str, n: int, seconds: float, timeout_s: float) -> dict:
    rng = np.random.default_rng(0)
    obs = Observation({c: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for c in CAMERAS},
                      np.zeros(14, np.float32), "put the red block on the plate")
    latencies: list[list[float]] = [[] for _ in range(n)]
    batches: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(n + 1)
    stop_at = [0.0]

    def client_loop(i: int) -> None:
        with PolicyClient(address, timeout_s=timeout_s, hello_timeout_s=timeout_s) as client:
            client.infer(obs)                      # hello + warm-up
            start.wait()
            while time.monotonic() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    chunk = client.infer(obs)
                except Exception as e:  # noqa: BLE001 - reported, not fatal to the benchmark
                    errors.append(f"client {i}: {e}")
                    continue
                latencies[i].append((time.perf_counter() - t0) * 1000)
                batches.append(chunk.timings_ms.get("batch", 1.0))

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds + 60          # until the barrier: warm-up may be slow
    start.wait()
    t_start = time.monotonic()
    stop_at[0] = t_start + seconds
    for t in threads:
        t.join(timeout=seconds + timeout_s + 30)
    elapsed = time.monotonic() - t_start
    counts = [len(lat) for lat in latencies]
    p50 = [float(np.percentile(lat, 50)) if lat else float("nan") for lat in latencies]
    p95 = [float(np.percentile(lat, 95)) if lat else float("nan") for lat in latencies]
    return {"clients": n, "chunks_per_s": sum(counts) / elapsed, "per_client_chunks": counts,
            "latency_ms_p50": float(np.median([x for lat in latencies for x in lat])) if any(counts) else None,
            "worst_client_p50_ms": max(p50), "worst_client_p95_ms": max(p95), "best_client_p50_ms": min(p50),
            "fairness": min(counts) / max(counts) if max(counts) else 0.0, "errors": len(errors),
            "mean_batch": float(np.mean(batches)) if batches else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.serving.bench_clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per N")
    parser.add_argument("--runner", choices=["testing", "wam"], default="testing")
    parser.add_argument("--delay-ms", type=float, default=45.0, help="testing runner's inference time")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--batch", default="1", help="server --batch values to compare, e.g. 1,8 (1 = off)")
    args = parser.parse_args(argv)
    server_args = (["--runner", "testing", "--testing-delay-ms", str(args.delay_ms)] if args.runner == "testing"
                   else ["--preset", "sim-tiny", "--random-init"])
    rows = []
    batches = [int(x) for x in args.batch.split(",")]
    with contextlib.ExitStack() as servers:    # one server per --batch value, all up at once, so that
        addresses = {}                         # each N runs them back to back (a load drift hits both)
        for batch in batches:
            addresses[batch] = f"tcp://127.0.0.1:{free_port()}"
            servers.enter_context(ServerProcess([*server_args, "--bind", addresses[batch], "--batch", str(batch),
                                                 "--log-level", "WARNING"], ready_timeout_s=300))
        for n in (int(x) for x in args.clients.split(",")):
            for batch in batches:
                rows.append({"batch": batch, **run_clients(addresses[batch], n, args.seconds, args.timeout_s)})
    print(f"{'batch':>5} {'clients':>7} {'chunks/s':>9} {'p50 ms':>8} {'worst p50':>10} {'worst p95':>10} "
          f"{'fairness':>9} {'mean batch':>10} errors")
    for r in rows:
        print(f"{r['batch']:>5} {r['clients']:>7} {r['chunks_per_s']:>9.1f} {r['latency_ms_p50']:>8.1f} "
              f"{r['worst_client_p50_ms']:>10.1f} {r['worst_client_p95_ms']:>10.1f} {r['fairness']:>9.2f} "
              f"{r['mean_batch'] or 0:>10.2f} {r['errors']:>6}")
    print(json.dumps({"runner": args.runner, "batch": args.batch, "delay_ms": args.delay_ms if args.runner == "testing" else None,
                      "seconds": args.seconds, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
