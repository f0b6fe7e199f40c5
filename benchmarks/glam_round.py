"""`llmrl bench glam-round`: one GLAM round (scoring the batch's steps + one PPO update) per arm and dtype, in
seconds and as a fraction of the hardware limit, in one process.

One fixed batch of real rollouts per arm (EnvRunner with an in-process LLMPolicy, collected at the first
--dtypes entry); then, per dtype, the policy is rebuilt with `backend.dtype` set (bfloat16: float32 weights,
forwards under torch.autocast), loaded with the same start weights, and timed (best of --repeats after a
warm-up; the start weights restored before every update):
- scoring: `policy.score(prompts, candidates, with_values=True)` once per env step of the batch on a frozen
  copy, as a scorer worker serves (the rollout's bootstrap requests are not timed);
- update: `PPOLearner.update(rollouts)`, old log-probs from the rollouts, the config's epochs and minibatches;
- round: scoring + update.

FLOP conventions (model shape and the tokens actually processed, `policy.encode` of each request):
- forward = `benchmarks.score.prefix_flops` (2 x non-embedding params per body token: each context once and
  every candidate token but the last; 2 x hidden x vocab per candidate token for the LM head; attention's
  quadratic term ignored) + 2 x value-head params per context. LoRA adapter weights are not counted.
- update = epochs x (forward + backward) over the batch (+ one forward for the prior with ppo.kl_prior);
  backward = 2 x forward with full fine-tuning (gradients of activations and weights), 1 x forward with
  LoRA (base weights frozen: activation gradients only; the adapter's own FLOPs ignored).
- the hardware limit = the same-run torch.matmul rate of two 2048 x 2048 matrices in that dtype.
- the model's ceiling = the same FLOP count per second of the model's own body on one large unpadded batch
  (CEILING_BATCH sequences of --ceiling-tokens tokens), forward alone and forward + backward, in that dtype and with
  the run's trainable weights: what this model's kernels reach on this machine when nothing is small, so a
  phase's fraction of the ceiling says how much a round loses to its own shapes and overheads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

from benchmarks.common import name_list
from benchmarks.ppo_update import add_arm_arguments, timed_update

DTYPES = ("float32", "bfloat16")
PHASES = ("scoring", "update", "round")
TARGET = 0.8
"""Target fraction of the hardware limit per round (reported, not asserted)."""
CEILING_BATCH = 4
"""Sequences in the model-ceiling batch (each of --ceiling-tokens tokens)."""
CONVENTIONS = ("forward: 2 x non-embedding params per body token (each context once, candidate tokens but the last) "
               "+ 2 x hidden x vocab per candidate token + 2 x value-head params per context, attention's quadratic "
               "term and LoRA adapters ignored; update: epochs x (forward + backward), backward = 2 x forward full "
               "fine-tuning, 1 x forward LoRA; limit: same-run 2048x2048 matmul in that dtype")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_arm_arguments(parser)
    parser.add_argument("--dtypes", type=name_list(DTYPES), default=",".join(DTYPES),
                        help=f"comma-separated subset of {DTYPES} (backend.dtype of the timed policy)")
    parser.add_argument("--steps", type=int, default=0,
                        help="env steps per env in the batch (0: the config's train.steps_per_update)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per figure after a warm-up (best kept)")
    parser.add_argument("--ceiling-tokens", type=int, default=256,
                        help="tokens per sequence of the model-ceiling batch (4 sequences)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every figure as JSON here")
    parser.set_defaults(handler=run)


# ---- FLOP math -------------------------------------------------------------------------------------
def forward_flops(request, dims: tuple[int, int, int], head_params: int) -> float:
    """One forward over a request: shared-prefix scoring's useful FLOPs + the value head on each context."""
    from benchmarks.score import prefix_flops

    return prefix_flops(request, dims) + 2 * head_params * len(request.context_ids)


def update_flops(forward: float, epochs: int, lora: bool, extra_forwards: int = 0) -> float:
    """A PPO update's FLOPs: epochs x (forward + backward) + extra forwards (the prior); backward is
    1 x forward with LoRA (activation gradients only), 2 x forward with full fine-tuning."""
    return epochs * (2 if lora else 3) * forward + extra_forwards * forward


def phase_row(seconds: float, flops: float, limit: float) -> dict:
    """Seconds, GFLOP, achieved GFLOP/s and the fraction of the hardware limit (FLOP/s) of one phase."""
    return {"seconds": seconds, "gflop": flops / 1e9, "gflop_per_s": flops / seconds / 1e9,
            "fraction": flops / seconds / limit}


def phase_rows(scoring: tuple[float, float], update: tuple[float, float], limit: float) -> dict[str, dict]:
    """{phase: phase_row} for scoring, update and the round (their sums), each given as (seconds, FLOPs)."""
    both = (scoring[0] + update[0], scoring[1] + update[1])
    return {phase: phase_row(*figures, limit) for phase, figures in zip(PHASES, (scoring, update, both))}


def speedups(slow: dict[str, dict], fast: dict[str, dict]) -> dict[str, float]:
    """Per phase: slow seconds / fast seconds (bf16/fp32 speedup with slow = fp32 rows, fast = bf16 rows)."""
    return {phase: slow[phase]["seconds"] / fast[phase]["seconds"] for phase in PHASES}


def model_ceiling(policy, lora: bool, repeats: int, tokens: int) -> dict[str, float]:
    """FLOP/s of the policy's body on CEILING_BATCH x `tokens` random tokens in its precision: forward
    (no grad) and forward + backward (its trainable weights; backward FLOPs as in update_flops)."""
    import torch

    from benchmarks.common import best_time

    model = policy.backend.hf_model
    body, _, vocab = adapter_free_dims(model)
    ids = torch.randint(0, vocab, (CEILING_BATCH, tokens), generator=torch.Generator().manual_seed(0))
    forward = 2 * body * ids.numel()
    decoder = model.get_decoder()

    def infer():
        with torch.inference_mode(), policy.backend.precision():
            decoder(input_ids=ids)

    def train():
        with policy.backend.precision():
            out = decoder(input_ids=ids).last_hidden_state
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)

    return {"forward": forward / best_time(infer, repeats, infer)[0],
            "train": (2 if lora else 3) * forward / best_time(train, repeats, train)[0]}


def adapter_free_dims(model) -> tuple[int, int, int]:
    """model_dims without LoRA adapter weights (peft injects them into the base model's layers)."""
    from benchmarks.score import model_dims

    body, hidden, vocab = model_dims(model)
    return body - sum(p.numel() for n, p in model.named_parameters() if "lora_" in n), hidden, vocab


# ---- the benchmark ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.common import machine_info, method_config, ppo_config
    from benchmarks.score import matmul_flops_per_s

    if args.repeats < 1 or args.steps < 0:
        raise SystemExit(f"--repeats must be at least 1 and --steps at least 0, got {args.repeats}, {args.steps}")
    base = method_config(args.config, args.overrides, "glam")
    if base.backend.trainable_layers:
        raise SystemExit("bench glam-round counts a backward pass through every block; this config trains only the "
                         f"top {base.backend.trainable_layers}: add --set backend.trainable_layers=0")
    steps = args.steps or base.train.steps_per_update
    machine = machine_info(torch.get_num_threads())
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} torch threads, "
          f"GPU: {machine['gpu']}; torch {machine['torch']}", flush=True)
    limits = {dtype: matmul_flops_per_s(dtype=dtype) for dtype in args.dtypes}
    print("matmul 2048x2048 (the hardware limit): "
          + ", ".join(f"{d} {v / 1e9:.1f} GFLOP/s" for d, v in limits.items()))
    print(f"config {args.config}: env {base.runner.env_id}, {base.num_runners} runner(s) x {base.runner.num_envs} envs "
          f"x {steps} steps, epochs {base.ppo.epochs}, minibatch {base.ppo.minibatch_size}; best of {args.repeats} "
          f"after a warm-up\nFLOPs: {CONVENTIONS}", flush=True)
    results = {}
    for arm in args.arms:
        config = ppo_config(base, arm, base.runner, base.train.total_env_steps, base.train.output_dir, args.full_lr)
        results[arm] = measure_arm(config, arm, args.dtypes, steps, args.repeats, limits, args.ceiling_tokens)
        report(arm, results[arm], limits)
    machine["load_average_1min_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "config": args.config, "overrides": args.overrides, "steps": steps,
                       "repeats": args.repeats, "matmul_flops_per_s": limits, "conventions": CONVENTIONS,
                       "target_fraction": TARGET, "arms": results}, f, indent=2)
    return 0


def measure_arm(config, arm: str, dtypes: list[str], steps: int, repeats: int, limits: dict[str, float],
                ceiling_tokens: int) -> dict:
    """Collect one batch with the first dtype's policy, then time scoring and the update at every dtype."""
    import torch

    from actors.env_runner import EnvRunner
    from benchmarks.common import best_time
    from policies.llm_policy import LLMPolicy

    ppo = dataclasses.replace(config.ppo, old_logprobs="rollout")
    figures: dict = {"dtypes": {}, "collected_at": dtypes[0]}
    rollouts = start = None
    for dtype in dtypes:
        torch.manual_seed(config.train.seed)
        policy = LLMPolicy(dataclasses.replace(config.backend, dtype=dtype), config.value_head)
        if rollouts is None:
            runner = EnvRunner(config.runner, policy)
            rollouts = [runner.rollout(steps) for _ in range(config.num_runners)]
            start = policy.get_weights()  # a copy, version 0: the collection does not train
        policy.load_weights(start, version=0)
        scorer = LLMPolicy(policy.backend.config, config.value_head)
        scorer.freeze()  # as a scorer worker serves: frozen weights stored in the compute dtype
        scorer.load_weights(start, version=0)
        dims = adapter_free_dims(policy.backend.hf_model)
        head = sum(p.numel() for p in policy.value_head.parameters())
        requests = [(r.prompts[t], r.candidates[t]) for r in rollouts for t in range(len(r.prompts))]
        score_flops = sum(forward_flops(policy.encode(*req), dims, head) for req in requests)
        batch = policy.encode([p for r in rollouts for p in r.flat("prompts")],
                              [c for r in rollouts for c in r.flat("candidates")])
        train_flops = update_flops(forward_flops(batch, dims, head), ppo.epochs, config.backend.lora is not None,
                                   int(ppo.kl_prior.beta > 0))
        score_s, _, score_times = best_time(lambda: [scorer.score(*req, with_values=True) for req in requests],
                                            repeats, lambda: scorer.score(*requests[0], with_values=True))
        update_times = [timed_update(policy, ppo, rollouts, start, config.train.seed) for _ in range(repeats + 1)][1:]
        rows = phase_rows((score_s, score_flops), (min(update_times), train_flops), limits[dtype])
        ceiling = model_ceiling(policy, config.backend.lora is not None, repeats, ceiling_tokens)
        figures["dtypes"][dtype] = {"phases": rows, "scoring_times": score_times, "update_times": update_times,
                                    "ceiling_flops_per_s": {**ceiling, "tokens": [CEILING_BATCH, ceiling_tokens]},
                                    "met": rows["round"]["fraction"] >= TARGET}
        print(json.dumps({"arm": arm, "dtype": dtype, "steps": len(batch.context_ids), "pairs": batch.num_pairs,
                          "scoring_times": score_times, "update_times": update_times}), flush=True)
        del policy, scorer
    if set(DTYPES) <= set(figures["dtypes"]):
        figures["speedup_bf16_over_fp32"] = speedups(*(figures["dtypes"][d]["phases"] for d in DTYPES))
    return figures


def report(arm: str, figures: dict, limits: dict[str, float]) -> None:
    """One table per dtype: phase, seconds, GFLOP, GFLOP/s, fraction of the limit, bf16/fp32 speedup."""
    speed = figures.get("speedup_bf16_over_fp32", {})
    for dtype, result in figures["dtypes"].items():
        print(f"\n{arm} {dtype} (limit: {dtype} matmul {limits[dtype] / 1e9:.1f} GFLOP/s)")
        print(f"{'phase':<8} {'seconds':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of limit':>8} {'bf16/fp32':>9}")
        for phase, row in result["phases"].items():
            ratio = f"{speed[phase]:.2f}x" if speed and dtype == "bfloat16" else "-"
            print(f"{phase:<8} {row['seconds']:8.3f} {row['gflop']:8.2f} {row['gflop_per_s']:8.1f} "
                  f"{row['fraction']:8.1%} {ratio:>9}")
        ceiling = result["ceiling_flops_per_s"]
        forward, train = ceiling["forward"], ceiling["train"]
        phases = result["phases"]
        print(f"model ceiling ({' x '.join(map(str, ceiling['tokens']))} tokens): forward {forward / 1e9:.1f} GFLOP/s "
              f"({forward / limits[dtype]:.1%} of the limit), forward + backward {train / 1e9:.1f} GFLOP/s "
              f"({train / limits[dtype]:.1%}); scoring at {phases['scoring']['gflop_per_s'] * 1e9 / forward:.0%} of "
              f"the forward ceiling, update at {phases['update']['gflop_per_s'] * 1e9 / train:.0%} of the training one")
        print(f"target: round >= {TARGET:.0%} of the limit: {'met' if result['met'] else 'not met'}", flush=True)
