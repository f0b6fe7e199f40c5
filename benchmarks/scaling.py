"""`llmrl bench scaling`: scorer-pool throughput (action-scores/s) with 1, 2, 4 workers at a fractional CPU
reservation each, on one workload (BabyAI-Text-like prompts x the 6 primitive actions), with ratios against
1 worker; and the time a worker takes to join a running pool (start, load the model and the pool's weights,
answer its first shard). One pool grows through the sizes; every size must return the same scores."""
from __future__ import annotations

import json
import os
import time

from benchmarks.common import PRIMITIVES, best_time, machine_info, workload


def add_arguments(parser) -> None:
    arg = parser.add_argument
    arg("--model", default="smollm2-135m", help="bundled model name, local directory or hub id")
    arg("--workers", default="1,2,4", help="pool sizes to measure, comma-separated, increasing")
    arg("--cpus-per-worker", type=float, default=0.5, help="Ray CPUs reserved per worker (fractions allowed)")
    arg("--contexts", type=int, default=16, help="contexts of the workload (each with the 6 primitive actions)")
    arg("--repeats", type=int, default=2, help="timed calls per size after a warm-up call (the best is kept)")
    arg("--seed", type=int, default=0, help="seed of the generated prompts")
    arg("--json", default=None, metavar="PATH", help="also write the figures as JSON here")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from actors.scorer_pool import PoolConfig, ScorerPool
    from cluster.ray_runtime import RayConfig, ensure_ray
    from policies.config import BackendConfig

    sizes = sorted({int(s) for s in args.workers.split(",") if s.strip()})
    machine = machine_info(1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, GPU: {machine['gpu']}; "
          f"torch {machine['torch']}; {args.cpus_per_worker:g} Ray CPU and 1 torch thread per worker", flush=True)
    w = workload("W1", args.contexts, list(PRIMITIVES), args.seed)
    ctx, cands = w["contexts"], w["candidates"]
    pairs = sum(map(len, cands))
    ensure_ray(RayConfig(num_cpus=max(machine["cores"], int(max(sizes) * args.cpus_per_worker + 0.999))))
    start = time.perf_counter()
    pool = ScorerPool(BackendConfig(model=args.model, device="cpu", dtype="float32", torch_threads=1),
                      PoolConfig(num_workers=sizes[0], cpus_per_worker=args.cpus_per_worker))
    print(f"pool of {sizes[0]} started in {time.perf_counter() - start:.1f} s", flush=True)
    rows, joins, reference = [], [], None
    try:
        for n in sizes:
            while pool.num_workers < n:
                joins.append(join_time(pool, ctx, cands))
                print(f"worker {pool.num_workers} joined in {joins[-1]['join_s']:.1f} s", flush=True)
            t, answer, times = best_time(lambda: pool.score(ctx, cands), args.repeats, lambda: pool.score(ctx, cands))
            reference = reference or answer.logprobs
            rows.append({"workers": n, "times": times, "scores_per_s": pairs / t,
                         "equal_to_1_worker": answer.logprobs == reference})
            print(f"x{n}: {pairs / t:.2f} action-scores/s", flush=True)
        stats = pool.stats()
    finally:
        pool.shutdown()
    machine["load_average_1min_end"] = os.getloadavg()[0]
    report(rows, joins, pairs, args, machine, stats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "pairs": pairs, "cpus_per_worker": args.cpus_per_worker, "sizes": rows,
                       "joins": joins, "pool_stats": stats}, f, indent=2)
    return 0


def join_time(pool, contexts, candidates) -> dict[str, float]:
    """Seconds to add one worker (start, model, weights) and until it has answered a shard of a request."""
    start = time.perf_counter()
    pool.add_workers(1)
    added = time.perf_counter() - start
    n = pool.num_workers
    pool.score(contexts[:n], candidates[:n])  # one context per worker: the new one serves one
    assert pool.stats()["per_worker"][-1]["served"] >= 1, "the new worker took no shard"
    return {"add_s": added, "join_s": time.perf_counter() - start}


def report(rows: list[dict], joins: list[dict], pairs: int, args, machine: dict, stats: dict) -> None:
    base = rows[0]["scores_per_s"]
    print(f"\nscorer pool, one request at a time of {args.contexts} contexts x 6 actions = {pairs} "
          f"action-scores; {args.cpus_per_worker:g} CPU per worker; best of {args.repeats} after a warm-up")
    print(f"{'workers':>7} {'actions/s':>10} {'vs 1':>6}  same scores as x{rows[0]['workers']}")
    for r in rows:
        print(f"{r['workers']:>7} {r['scores_per_s']:10.2f} {r['scores_per_s'] / base:6.2f}  {r['equal_to_1_worker']}")
    if joins:
        adds, totals = [j["add_s"] for j in joins], [j["join_s"] for j in joins]
        print(f"join: a worker added to the running pool served its first shard after {min(totals):.1f}-"
              f"{max(totals):.1f} s (start, model load and weights: {min(adds):.1f}-{max(adds):.1f} s; "
              f"{len(joins)} joins)")
    print(f"pool counters: requests in {stats['requests_in']}, answers out {stats['answers_out']}, "
          f"failed {stats['failed']}; load average (1 min) {machine['load_average_1min']:.2f} at start, "
          f"{machine['load_average_1min_end']:.2f} at end ({machine['cores']} cores)")
