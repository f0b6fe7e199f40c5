"""`llmrl bench icpi`: (1) lockstep vs one-call-at-a-time Q estimation (round trips, LLM calls, wall time
per env step, Q agreement) on chain and maze, both orders in one run through one scorer pool; (2) final
regret of ICPI and the baselines on the six envs, a few seeds each. Figures in BENCHMARKS.md ("ICPI")."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import add_overrides, name_list

ENVS = ("chain", "distractor_chain", "maze", "mini_catch", "mini_invaders", "point_mass")
AGENTS = ("icpi", "no_argmax", "matching", "tabular_q", "random")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    arg = parser.add_argument
    arg("--part", default="all", choices=["orders", "regret", "all"], help="which figures to make")
    arg("--order-envs", type=name_list(ENVS), default="chain,maze",
        help="envs of the lockstep-vs-sequential comparison")
    arg("--order-states", type=int, default=3, help="env steps (start states) timed per env and order")
    arg("--envs", type=name_list(ENVS), default=",".join(ENVS), help=f"envs of the regret figures, subset of {ENVS}")
    arg("--agents", type=name_list(AGENTS), default=",".join(AGENTS), help=f"comma-separated subset of {AGENTS}")
    arg("--llm-envs", type=name_list(ENVS), default=None,
        help="envs where the LLM agents (icpi, no_argmax) run (default: --envs)")
    arg("--seeds", default="0,1,2", help="comma-separated seeds")
    arg("--steps", type=int, default=100, help="env steps per regret run")
    arg("--token-budget", type=int, default=None, help="override icpi.token_budget of the configs")
    arg("--horizon", type=int, default=None, help="override the rollout horizon (default: the env's)")
    arg("--sampled", action="store_true", help="sample done/reward/action instead of scoring their answer sets")
    arg("--workers", type=int, default=1, help="Ray scorer workers")
    arg("--output-dir", default="runs/bench_icpi")
    arg("--json", default=None, metavar="PATH", help="also write the figures as JSON here")
    add_overrides(parser)
    parser.set_defaults(handler=run)


def base_config(env_name: str, args, **overrides):
    """configs/icpi_ENV_NAME.yaml with the benchmark's overrides."""
    from benchmarks.common import method_config

    config = method_config(Path("configs") / f"icpi_{env_name}.yaml", args.overrides, "icpi")
    icpi = dataclasses.replace(config.icpi, score_answer_sets=not args.sampled, horizon=args.horizon,
                               token_budget=args.token_budget or config.icpi.token_budget)
    pool = dataclasses.replace(config.pool, num_workers=args.workers)
    return dataclasses.replace(config, icpi=icpi, pool=pool, **overrides)


def warm_buffers(env, config, seed: int, min_episodes: int = 8):
    """Replay and success buffers of random episodes, until the ICPI agent would be ready."""
    from envs.icpi.base import TimeStep
    from learners.icpi.agent import model_ready
    from learners.icpi.buffers import EpisodeBuffers

    buffers = EpisodeBuffers(env.gamma, env.failure_threshold, config.sil, config.success_buffer_size)
    rng = np.random.default_rng(seed)
    for episode in range(1000):
        if episode >= min_episodes and model_ready(buffers, len(env.action_strings)):
            return buffers
        state, _ = env.reset(seed=seed * 10_000 + episode)
        trajectory, ended = [], False
        while not ended:
            action = int(rng.integers(len(env.action_strings)))
            next_state, reward, terminated, truncated, _ = env.step(action)
            trajectory.append(TimeStep(state, action, reward, terminated, next_state))
            state, ended = next_state, terminated or truncated
        buffers.add(trajectory)
    raise RuntimeError(f"{env.name}: random episodes never made the agent ready")


def compare_orders(name: str, args, client, count_tokens) -> dict:
    """Q of the same states estimated in lockstep and one call at a time, through the same client."""
    from learners.icpi.algorithm import make_icpi_env
    from learners.icpi.client import CountingClient
    from learners.icpi.lockstep import estimate_q
    from learners.icpi.predictor import LLMPredictor

    config = base_config(name, args)
    icpi = dataclasses.replace(config.icpi, temperature=0.0)  # greedy: both orders must agree
    env = make_icpi_env(config).unwrapped
    buffers = warm_buffers(env, icpi, seed=0)
    figures = {"lockstep": [], "sequential": []}
    agree = []
    horizon = icpi.horizon or env.horizon
    warm_up = LLMPredictor(env, buffers, CountingClient(client, count_tokens), icpi, count_tokens)
    warm_up.begin_step(99)  # untimed: the workers' first calls are slow
    estimate_q(env.reset(seed=9_999)[0], len(env.action_strings), warm_up, env.gamma, horizon, seed=99)
    for k in range(args.order_states):
        state, _ = env.reset(seed=10_000 + k)
        q = {}
        for order in (("lockstep", "sequential") if k % 2 == 0 else ("sequential", "lockstep")):
            counting = CountingClient(client, count_tokens)
            predictor = LLMPredictor(env, buffers, counting, icpi, count_tokens)
            predictor.begin_step(k)
            start = time.perf_counter()
            q[order] = estimate_q(state, len(env.action_strings), predictor, env.gamma, horizon,
                                  icpi.rollouts_per_action, seed=k, lockstep=order == "lockstep")
            s = counting.stats
            figures[order].append({"wall_s": time.perf_counter() - start, "round_trips": s.round_trips,
                                   "llm_calls": s.calls, "prompt_tokens": s.prompt_tokens})
            print(f"  {name} state {k} {order}: {figures[order][-1]} q={np.round(q[order], 3).tolist()}", flush=True)
        agree.append(bool(np.allclose(q["lockstep"], q["sequential"], atol=1e-6)))
    means = {order: {key: float(np.mean([f[key] for f in rows])) for key in rows[0]} for order, rows in figures.items()}
    return {"env": name, "states": args.order_states, "episodes_in_buffer": len(buffers.replay),
            "token_budget": icpi.token_budget, **means, "q_agree": agree,
            "speedup": means["sequential"]["wall_s"] / means["lockstep"]["wall_s"]}


def regret_runs(args, client, count_tokens) -> list[dict]:
    """One run per (env, agent, seed); the LLM agents share the client."""
    from cluster.experiment import Experiment
    from learners.icpi.baselines import LLM_AGENTS

    llm_envs = set(args.llm_envs or args.envs)
    summaries = []
    for name in args.envs:
        for agent in args.agents:
            if agent in LLM_AGENTS and name not in llm_envs:
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                config = base_config(name, args, agent=agent, name=f"{name}_{agent}_s{seed}")
                config = dataclasses.replace(config, train=dataclasses.replace(
                    config.train, total_env_steps=args.steps, seed=seed, output_dir=args.output_dir))
                run_dir = Experiment(config, progress=False, client=client, count_tokens=count_tokens).run()
                summary = json.loads((run_dir / "summary.json").read_text())
                summaries.append({**summary, "name": name})
                print(f"  {name} {agent} seed {seed}: final regret {summary['final_regret']:.3f}, "
                      f"{summary['env_steps']} steps, {summary['wall_s']:.0f} s", flush=True)
    return summaries


def regret_table(summaries: list[dict]) -> str:
    """Markdown: mean (min-max) final regret per env and agent."""
    agents = list(dict.fromkeys(s["agent"] for s in summaries))
    lines = ["| env | " + " | ".join(agents) + " |", "|---|" + "---|" * len(agents)]
    for name in dict.fromkeys(s["name"] for s in summaries):
        cells = []
        for agent in agents:
            values = [s["final_regret"] for s in summaries if s["name"] == name and s["agent"] == agent]
            cells.append(f"{np.mean(values):.2f} ({len(values)} seeds)" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args) -> int:
    from actors.pool_config import PoolConfig
    from cluster.runtime import RayRuntime
    from learners.icpi.baselines import LLM_AGENTS
    from learners.icpi.client import model_token_counter

    config = base_config("chain", args)
    needs_llm = args.part in ("orders", "all") or any(a in LLM_AGENTS for a in args.agents)
    pool = count_tokens = None
    if needs_llm:
        pool = RayRuntime(config.ray).scorer(config.backend, PoolConfig(num_workers=args.workers))
        count_tokens = model_token_counter(config.backend.model)
    figures: dict = {"args": vars(args) | {"handler": None}}
    try:
        if args.part in ("orders", "all"):
            print("lockstep vs one call at a time (greedy, same states, same pool):", flush=True)
            figures["orders"] = [compare_orders(name, args, pool, count_tokens) for name in args.order_envs]
            for f in figures["orders"]:
                lock, seq = f["lockstep"], f["sequential"]
                print(f"{f['env']}: round trips/step {seq['round_trips']:.1f} -> {lock['round_trips']:.1f}, "
                      f"LLM calls/step {seq['llm_calls']:.1f} -> {lock['llm_calls']:.1f}, wall s/step "
                      f"{seq['wall_s']:.1f} -> {lock['wall_s']:.1f} (x{f['speedup']:.2f}), Q agree {f['q_agree']}")
        if args.part in ("regret", "all"):
            print(f"final regret after {args.steps} env steps:", flush=True)
            figures["regret"] = regret_runs(args, pool, count_tokens)
            print(regret_table(figures["regret"]))
    finally:
        if pool is not None:
            pool.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0
