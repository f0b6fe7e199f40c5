"""`llmrl bench vllm`: the vLLM backend against the transformers backend in one run, on the same workloads:
generation tokens/s (greedy, and sampled with n completions per prompt) and scoring actions/s, on
BabyAI-Text-like prompts. Figures are the best of a few timed calls after a warm-up."""
from __future__ import annotations

import json
import os
import random
import time

from benchmarks.common import PRIMITIVES, babyai_context, best_time, machine_info, max_abs_diff, workload


def add_arguments(parser) -> None:
    arg = parser.add_argument
    arg("--model", default="smollm2-135m", help="bundled model name, local directory or hub id")
    arg("--prompts", type=int, default=16, help="generation prompts")
    arg("--new-tokens", type=int, default=32, help="new tokens per completion")
    arg("--samples", type=int, default=4, help="completions per prompt of the sampled run (temperature 1)")
    arg("--contexts", type=int, default=16, help="scoring contexts, each with the 6 primitive actions")
    arg("--threads", type=int, default=0, help="torch threads of the transformers backend (0: all cores); vLLM-CPU "
        "binds its worker to the cores left after reserving one per rank for its scheduler")
    arg("--repeats", type=int, default=2, help="timed calls per figure after a warm-up call (the best is kept)")
    arg("--seed", type=int, default=0, help="seed of the generated prompts")
    arg("--json", default=None, metavar="PATH", help="also write the figures as JSON here")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from policies.backend import make_backend
    from policies.config import BackendConfig

    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    machine = machine_info(threads)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, GPU: {machine['gpu']}; "
          f"torch {machine['torch']}, float32; transformers: {threads} threads", flush=True)
    rng = random.Random(args.seed)
    prompts = [babyai_context(rng) for _ in range(args.prompts)]
    scoring = workload("W1", args.contexts, list(PRIMITIVES), args.seed + 1)
    results = {}
    for name in ("transformers", "vllm"):
        start = time.perf_counter()
        backend = make_backend(BackendConfig(model=args.model, backend=name, dtype="float32", torch_threads=threads))
        load_s = time.perf_counter() - start
        print(f"{name}: loaded in {load_s:.1f} s", flush=True)
        results[name] = {"load_s": load_s, **measure(backend, prompts, scoring, args)}
        if name == "vllm":
            backend.close()
    machine["load_average_1min_end"] = os.getloadavg()[0]
    report(results, args, machine)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": {k: v for k, v in vars(args).items() if k != "handler"},
                       "results": {k: {m: v for m, v in r.items() if m[0] != "_"} for k, r in results.items()}},
                      f, indent=2)
    return 0


def measure(backend, prompts: list[str], scoring: dict, args) -> dict:
    """Greedy and sampled generation tokens/s and scoring actions/s of one backend."""
    def count(texts: list[list[str]]) -> int:  # new tokens, by re-tokenizing the completions
        return sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for row in texts for t in row)

    def warm():
        return backend.generate(prompts[:2], max_new_tokens=4)

    t_greedy, greedy, _ = best_time(lambda: backend.generate(prompts, max_new_tokens=args.new_tokens), args.repeats,
                                    warm)
    sample = dict(n=args.samples, max_new_tokens=args.new_tokens, temperature=1.0, seed=0)
    t_sampled, sampled, _ = best_time(lambda: backend.generate(prompts, **sample), args.repeats, warm)
    ctx, cands = scoring["contexts"], scoring["candidates"]
    t_score, scores, _ = best_time(lambda: backend.score(ctx, cands), args.repeats,
                                   lambda: backend.score(ctx[:1], cands[:1]))
    pairs = sum(map(len, cands))
    r = {"greedy_tokens": count(greedy.texts), "greedy_s": t_greedy, "sampled_tokens": count(sampled.texts),
         "sampled_s": t_sampled, "pairs": pairs, "score_s": t_score, "_greedy": greedy.texts,
         "_scores": scores.logprobs}
    r["greedy_tokens_per_s"] = r["greedy_tokens"] / t_greedy
    r["sampled_tokens_per_s"] = r["sampled_tokens"] / t_sampled
    r["actions_per_s"] = pairs / t_score
    print(f"{type(backend).__name__}: greedy {r['greedy_tokens_per_s']:.1f} tok/s, sampled "
          f"{r['sampled_tokens_per_s']:.1f} tok/s, scoring {r['actions_per_s']:.2f} actions/s", flush=True)
    return r


def report(results: dict, args, machine: dict) -> None:
    hf, vl = results["transformers"], results["vllm"]
    print(f"\n{args.prompts} prompts x {args.new_tokens} new tokens (greedy; sampled: n={args.samples}, temperature 1); "
          f"scoring {hf['pairs']} pairs ({args.contexts} contexts x 6 actions); best of {args.repeats} after a warm-up")
    print(f"{'':<28} {'transformers':>13} {'vllm':>10} {'vllm/tf':>8}")
    for key, label in (("greedy_tokens_per_s", "greedy generation tok/s"), ("sampled_tokens_per_s",
                       "sampled generation tok/s"), ("actions_per_s", "scoring actions/s"), ("load_s", "load s")):
        print(f"{label:<28} {hf[key]:13.2f} {vl[key]:10.2f} {vl[key] / hf[key]:8.2f}")
    same = sum(a == b for a, b in zip(hf["_greedy"], vl["_greedy"]))
    print(f"\nsanity: greedy completions identical for {same}/{args.prompts} prompts; max |score difference| "
          f"{max_abs_diff(hf['_scores'], vl['_scores']):.1e}")
    print(f"load average (1 min): {machine['load_average_1min']:.2f} at start, "
          f"{machine['load_average_1min_end']:.2f} at end")
