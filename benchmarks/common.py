"""What the benchmarks share: argument lists, seeded BabyAI-like workloads, timing, the machine's description."""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import time
from typing import Callable, Sequence

COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECTS = ("ball", "box", "key")
PRIMITIVES = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")


# ---- workloads -------------------------------------------------------------------------------------
def _steps(n: int, direction: str) -> str:
    return f"{n} step{'' if n == 1 else 's'} {direction}"


def babyai_observation(rng: random.Random) -> str:
    """One BabyAI-Text observation: 1-3 'You see ...' clauses with random objects, colours and offsets."""
    clauses = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.3:
            clauses.append(f"You see a wall {_steps(rng.randint(1, 6), rng.choice(('forward', 'left', 'right')))}")
        else:
            side, ahead = _steps(rng.randint(1, 3), rng.choice(("left", "right"))), _steps(rng.randint(1, 5), "forward")
            clauses.append(f"You see a {rng.choice(COLOURS)} {rng.choice(OBJECTS + ('door',))} {side} and {ahead}")
    return ", ".join(clauses)


def babyai_context(rng: random.Random, steps: int = 3) -> str:
    """A GLAM-style BabyAI-Text prompt: actions, a goal, `steps` observation/action steps, ending 'Action k:'."""
    colour, obj = rng.choice(COLOURS), rng.choice(OBJECTS)
    goal = rng.choice((f"go to the {colour} {obj}", f"pick up the {colour} {obj}", f"open the {colour} door",
                       f"put the {colour} {obj} next to the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}"))
    lines = [f"Possible action of the agent: {', '.join(PRIMITIVES)}", f"Goal of the agent: {goal}"]
    for t in range(steps):
        lines.append(f"Observation {t}: {babyai_observation(rng)}")
        lines.append(f"Action {t}:" + ("" if t == steps - 1 else f" {rng.choice(PRIMITIVES)}"))
    return "\n".join(lines)


def action_strings(n: int, seed: int = 0) -> list[str]:
    """n distinct actions of varied token length: the primitives, then round-robin draws from four
    shuffled templates (go to / pick up / open / put next to)."""
    rng = random.Random(seed)
    things = [(c, o) for c in COLOURS for o in OBJECTS]
    templates = [[f"go to the {c} {o}" for c, o in things], [f"pick up the {c} {o}" for c, o in things],
                 [f"open the {c} door" for c in COLOURS],
                 [f"put the {c} {o} next to the {c2} {o2}" for c, o in things for c2, o2 in things if c + o != c2 + o2]]
    for t in templates:
        rng.shuffle(t)
    out = list(PRIMITIVES) + [t[k] for k in range(max(map(len, templates))) for t in templates if k < len(t)]
    return out[:n]


def workload(name: str, num_contexts: int, candidates: list[str], seed: int) -> dict:
    """Seeded contexts; every context gets the same candidates, each with a leading space."""
    rng = random.Random(seed)
    contexts = [babyai_context(rng) for _ in range(num_contexts)]
    return {"name": name, "contexts": contexts, "candidates": [[" " + c for c in candidates] for _ in contexts]}


# ---- timing and machine ----------------------------------------------------------------------------
def best_time(fn, repeats: int, warmup):
    """(best seconds, result of the last call, all timings) of `repeats` calls of fn after one warm-up call."""
    warmup()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result, times


def machine_info(threads: int) -> dict:
    """CPU model (/proc/cpuinfo), cores, RAM, GPU, torch version, the threads of (a)/(b), load average."""
    import torch

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_1min": os.getloadavg()[0]}


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))



# ---- run configs ---------------------------------------------------------------------------------
def ppo_config(base, arm: str, runner, env_steps: int, output_dir: str, full_lr: float, checkpoint_every: int = 4):
    """The base run config turned into one PPO arm on `runner`: LoRA as configured, or full fine-tuning."""
    backend = base.backend if arm == "ppo-lora" else dataclasses.replace(base.backend, lora=None)
    ppo = base.ppo if arm == "ppo-lora" else dataclasses.replace(base.ppo, lr=full_lr)
    train = dataclasses.replace(base.train, total_env_steps=env_steps, output_dir=output_dir,
                                checkpoint_every=checkpoint_every)
    return dataclasses.replace(base, name=arm, backend=backend, ppo=ppo, train=train, runner=runner)



def method_config(path, overrides, method: str):
    """A run config of `method` (a benchmark's --config) with --set overrides applied."""
    from cluster.config import ConfigError
    from cluster.methods import load_config

    config = load_config(path, overrides)
    if config.method != method:
        raise ConfigError(f"{path} is a {config.method} config; this benchmark needs method: {method}")
    return config


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """--set KEY=VALUE (repeatable): dotted overrides of the benchmark's run config, as in `llmrl run`."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a value of the run config by its dotted key, e.g. --set ppo.lr=1e-5")


# ---- argument lists ------------------------------------------------------------------------------
def name_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse `type` for 'a,b,c' over `allowed`: returns the names in order; '-' and '_' are
    interchangeable (maze, mini-catch, mini_catch); an unknown or empty list is a usage error that
    names the offending entries and what is allowed."""

    def parse(text: str) -> list[str]:
        names, unknown = [], []
        for raw in (part.strip() for part in text.split(",")):
            if not raw:
                continue
            match = next((a for a in allowed if a.replace("-", "_") == raw.replace("-", "_")), None)
            (names if match else unknown).append(match or raw)
        if unknown:
            shown = ", ".join(map(repr, unknown))
            raise argparse.ArgumentTypeError(f"unknown {shown}; choose from {', '.join(allowed)}")
        if not names:
            raise argparse.ArgumentTypeError(f"empty list; choose from {', '.join(allowed)}")
        return names

    return parse
