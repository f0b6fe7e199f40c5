"""`llmrl bench score`: action-scores/s of (a) naive per-pair scoring, (b) the shared-prefix backend and
(c) the Ray scorer pool, on BabyAI-Text-like prompts (W1: 32 contexts x the 6 primitive actions; W2: 8
contexts x 40 action strings). Figures are the best of a few timed calls after a warm-up, all in one run."""
from __future__ import annotations

import json
import os

from benchmarks.common import PRIMITIVES, action_strings, best_time, machine_info, max_abs_diff, workload

TARGETS = {"W1": 5.0, "W2": 10.0}  # (b) / (a) action-scores/s on a 2-core CPU


# ---- FLOP counting (2 x params per token; attention's quadratic term ignored) ---------------------
def model_dims(model) -> tuple[int, int, int]:
    """(non-embedding parameter count, hidden size, vocab size) of a causal LM."""
    head = model.get_output_embeddings().weight
    embeddings = {id(model.get_input_embeddings().weight), id(head)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings), head.shape[1], head.shape[0]


def naive_flops(request, batch_size: int, dims: tuple[int, int, int]) -> float:
    """FLOPs of naive_causal_scores: every padded token of every pair through the body and the LM head."""
    body, hidden, vocab = dims
    seqs = [len(ctx) + len(c) for ctx, cands in zip(request.context_ids, request.candidate_ids) for c in cands]
    tokens = sum(len(seqs[s:s + batch_size]) * max(seqs[s:s + batch_size]) for s in range(0, len(seqs), batch_size))
    return tokens * (2 * body + 2 * hidden * vocab)


def prefix_flops(request, dims: tuple[int, int, int]) -> float:
    """Useful FLOPs of the shared-prefix scorer, unpadded: each context once and every candidate token
    but the last through the body; the LM head once per candidate token."""
    body, hidden, vocab = dims
    cand_tokens = sum(len(c) for cands in request.candidate_ids for c in cands)
    body_tokens = sum(map(len, request.context_ids)) + cand_tokens - request.num_pairs
    return body_tokens * 2 * body + cand_tokens * 2 * hidden * vocab


def matmul_flops_per_s(n: int = 2048, repeats: int = 20, dtype: str = "float32") -> float:
    """torch.matmul FLOP/s of two n x n matrices of `dtype` (fp32 unless told): best of `repeats` calls after
    a warm-up."""
    import torch

    x, y = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    return 2 * n ** 3 / best_time(lambda: torch.matmul(x, y), repeats, lambda: torch.matmul(x, y))[0]


def strided_subset(num_contexts: int, per_context: int, min_pairs: int) -> list[int]:
    """Evenly spaced context indices holding at least min_pairs pairs (all contexts if min_pairs <= 0)."""
    if min_pairs <= 0 or min_pairs >= num_contexts * per_context:
        return list(range(num_contexts))
    k = -(-min_pairs // per_context)
    return [i * num_contexts // k for i in range(k)]


# ---- the benchmark ---------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    arg = parser.add_argument
    arg("--model", default="smollm2-135m", help="bundled model name, local directory or hub id")
    arg("--repeats", type=int, default=3, help="timed calls per figure after a warm-up call (the best is kept)")
    arg("--naive-repeats", type=int, default=1, help="timed calls of the slow naive baseline")
    arg("--naive-pairs", type=int, default=96, help="time the naive baseline on evenly spaced contexts holding at "
        "least this many pairs (0: all); its cost is per pair, so its pairs/s carries over")
    arg("--naive-batch-size", type=int, default=16, help="pairs per naive forward pass")
    arg("--threads", type=int, default=0, help="torch threads for (a) and (b) (0: all cores)")
    arg("--workers", default="1,2", help="pool sizes to measure, comma-separated ('' skips the pool)")
    arg("--seed", type=int, default=0, help="seed of the generated prompts")
    arg("--quick", action="store_true", help="one timed call per figure and a 48-pair naive sample")
    arg("--json", default=None, metavar="PATH", help="also write the figures as JSON here")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from policies.config import BackendConfig
    from policies.transformers_backend import TransformersBackend

    repeats, naive_repeats = (1, 1) if args.quick else (args.repeats, args.naive_repeats)
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    machine = machine_info(threads)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, GPU: {machine['gpu']}; "
          f"torch {machine['torch']}; {threads} threads for (a) and (b), 1 CPU and 1 thread per pool worker")
    matmul = matmul_flops_per_s()
    print(f"fp32 matmul 2048x2048: {matmul / 1e9:.1f} GFLOP/s", flush=True)
    backend = TransformersBackend(BackendConfig(model=args.model, device="cpu", dtype="float32", torch_threads=threads))
    loads = [workload("W1", 32, list(PRIMITIVES), args.seed),
             workload("W2", 8, action_strings(40, args.seed), args.seed + 1)]
    results = [measure_in_process(backend, w, repeats, naive_repeats, 48 if args.quick else args.naive_pairs,
                                  args.naive_batch_size) for w in loads]
    sizes = sorted(int(s) for s in args.workers.split(",") if s.strip())
    if sizes:
        run_pool(args.model, sizes, results, repeats)
        if not all(p["equal_to_backend"] for r in results for p in r["pool"].values()):
            torch.set_num_threads(1)  # the workers' count: CPU GEMM rounding can depend on the thread count
            for r in results:
                one = backend.score(*r["_request"]).logprobs
                r["pool_equal_to_backend_at_1_thread"] = all(s == one for s in r["_pool_scores"].values())
            torch.set_num_threads(threads)
    machine["load_average_1min_end"] = os.getloadavg()[0]
    report(matmul, results, sizes, f"best of {repeats} timed calls after a warm-up; (a): best of {naive_repeats}, "
           f"batches of {args.naive_batch_size} pairs, timed on the pairs in brackets", machine)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "matmul_flops_per_s": matmul, "repeats": repeats,
                       "naive_repeats": naive_repeats, "naive_batch_size": args.naive_batch_size,
                       "workloads": [{k: v for k, v in r.items() if k[0] != "_"} for r in results]}, f, indent=2)
    return 0


def measure_in_process(backend, w: dict, repeats: int, naive_repeats: int, naive_pairs: int, batch: int) -> dict:
    """Time (a) naive_causal_scores on a strided sample of contexts and (b) backend.score on the whole workload."""
    from policies.scoring import naive_causal_scores

    ctx, cands = w["contexts"], w["candidates"]
    request = backend.encode(ctx, cands)
    sample = strided_subset(len(ctx), len(cands[0]), naive_pairs)
    sub = backend.encode([ctx[i] for i in sample], [cands[i] for i in sample])
    warm = backend.encode(ctx[:1], [cands[0][:batch]])
    t_a, scores_a, times_a = best_time(lambda: naive_causal_scores(backend.hf_model, sub, batch), naive_repeats,
                                       lambda: naive_causal_scores(backend.hf_model, warm, batch))
    t_b, result_b, times_b = best_time(lambda: backend.score(ctx, cands), repeats,
                                       lambda: backend.score(ctx[:2], cands[:2]))
    dims, lengths = model_dims(backend.hf_model), [len(c) for c in request.context_ids]
    ratio = (request.num_pairs / t_b) / (sub.num_pairs / t_a)
    r = {"workload": w["name"], "contexts": len(ctx), "candidates": len(cands[0]), "pairs": request.num_pairs,
         "context_tokens_min_mean_max": [min(lengths), sum(lengths) / len(lengths), max(lengths)],
         "candidate_tokens": [len(c) for c in request.candidate_ids[0]], "naive_pairs_timed": sub.num_pairs,
         "naive_times": times_a, "backend_times": times_b, "naive_scores_per_s": sub.num_pairs / t_a,
         "backend_scores_per_s": request.num_pairs / t_b, "ratio": ratio, "target": TARGETS[w["name"]],
         "met": ratio >= TARGETS[w["name"]], "naive_flops_per_s": naive_flops(sub, batch, dims) / t_a,
         "backend_flops_per_s": prefix_flops(request, dims) / t_b, "pool": {}, "_pool_scores": {},
         "max_abs_diff_naive_backend": max_abs_diff(scores_a, [result_b.logprobs[i] for i in sample]),
         "_request": (ctx, cands), "_scores_b": result_b.logprobs}
    print(f"{w['name']}: {request.num_pairs} pairs, context tokens {min(lengths)}-{max(lengths)}: (a) "
          f"{sub.num_pairs / t_a:.2f}/s on {sub.num_pairs} pairs, (b) {request.num_pairs / t_b:.2f}/s", flush=True)
    return r


def run_pool(model: str, sizes: list[int], results: list[dict], repeats: int) -> None:
    """Time the Ray scorer pool at each size (workers added to one pool; 1 CPU and 1 torch thread each)."""
    from actors.scorer_pool import PoolConfig, ScorerPool
    from cluster.ray_runtime import RayConfig, ensure_ray
    from policies.config import BackendConfig

    ensure_ray(RayConfig())
    pool = ScorerPool(BackendConfig(model=model, device="cpu", dtype="float32", torch_threads=1),
                      PoolConfig(num_workers=sizes[0], cpus_per_worker=1.0))
    try:
        for n in sizes:
            pool.add_workers(max(0, n - pool.num_workers))
            for r in results:
                ctx, cands = r["_request"]
                t, answer, times = best_time(lambda: pool.score(ctx, cands), repeats,
                                             lambda: pool.score(ctx[:n], cands[:n]))
                r["_pool_scores"][n] = answer.logprobs
                r["pool"][n] = {"times": times, "scores_per_s": r["pairs"] / t,
                                "equal_to_backend": answer.logprobs == r["_scores_b"],
                                "max_abs_diff_backend": max_abs_diff(answer.logprobs, r["_scores_b"])}
                print(f"{r['workload']}: pool x{n} {r['pairs'] / t:.2f}/s", flush=True)
    finally:
        pool.shutdown()


def report(matmul: float, results: list[dict], sizes: list[int], how: str, machine: dict) -> None:
    """The results tables on stdout."""
    print(f"\naction-scores/s = (context, candidate) pairs scored per second ({how})")
    print(f"{'workload':<10} {'pairs':>5} {'(a) naive':>14} {'(b) ours':>9}"
          + "".join(f" {'pool x' + str(n):>9}" for n in sizes) + f" {'b/a':>6} {'target':>7}  met")
    for r in results:
        naive = f"{r['naive_scores_per_s']:.2f} ({r['naive_pairs_timed']})"
        print(f"{r['workload'] + ' ' + str(r['contexts']) + 'x' + str(r['candidates']):<10} {r['pairs']:5d} "
              f"{naive:>14} {r['backend_scores_per_s']:9.2f}"
              + "".join(f" {r['pool'][n]['scores_per_s']:9.2f}" for n in sizes)
              + f" {r['ratio']:6.2f} {'>= ' + format(r['target'], 'g'):>7}  {'yes' if r['met'] else 'NO'}")
    print(f"\nachieved model GFLOP/s vs fp32 matmul {matmul / 1e9:.1f} (2 x non-embedding params per token + 2 x "
          f"hidden x vocab per LM-head position; attention's quadratic term ignored; (a) padded, (b) unpadded tokens)")
    for r in results:
        print(f"{r['workload']:<10} (a) {r['naive_flops_per_s'] / 1e9:6.1f} ({r['naive_flops_per_s'] / matmul:.0%})"
              f"   (b) {r['backend_flops_per_s'] / 1e9:6.1f} ({r['backend_flops_per_s'] / matmul:.0%})")
    print("\nsanity: max |a - b| " + ", ".join(f"{r['workload']} {r['max_abs_diff_naive_backend']:.1e} ("
          f"{'ok, <= 1e-4' if r['max_abs_diff_naive_backend'] <= 1e-4 else 'OVER 1e-4'})" for r in results))
    if sizes:
        print("sanity: pool == (b) exactly: " + ", ".join(f"{r['workload']} x{n} {r['pool'][n]['equal_to_backend']}"
              f" (max diff {r['pool'][n]['max_abs_diff_backend']:.1e})" for r in results for n in sizes)
              + "".join(f"; pool == (b) run at 1 thread like the workers, {r['workload']}: {r[key]}"
                        for r in results for key in ["pool_equal_to_backend_at_1_thread"] if key in r))
    print(f"load average (1 min): {machine['load_average_1min']:.2f} at start, "
          f"{machine['load_average_1min_end']:.2f} at end")
