"""CQL-Prior: the loss against a hand computation, the dataset format (round trip, corruption), `llmrl collect`
(random in-process, a DQN checkpoint, the real LLM through a Ray pool), and CQL / CQL-Prior runs on the contract."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from cluster.cli import main
from cluster.config import ConfigError
from cluster.experiment import Experiment
from cluster.methods import config_from_dict
from cluster.metrics import read_metrics
from cluster.runtime import LocalRuntime
from learners.cql_prior.collect import collect, load_collect_config
from learners.cql_prior.dataset import (META, TRANSITIONS, DatasetError, DatasetWriter, Record, load_dataset,
                                        read_meta)
from learners.cql_prior.learner import CQLLearner, OfflineTransition, cql_loss
from learners.dqn_prior.learner import MIN_FEATURE_STD
from learners.dqn_prior.replay import pair_text

ACTIONS = ("go left", "go down", "go right", "go up")
COLLECT = "configs/collect/frozenlake.yaml"


def test_cql_loss_by_hand():
    q_data = torch.tensor([1.0, 0.0], requires_grad=True)
    q_candidates = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    total, td, cql = cql_loss(q_data, q_candidates, mask, torch.tensor([0.5, 1.0]), coef=2.0)
    assert td.item() == pytest.approx(0.5 * (0.5 ** 2 + 1.0 ** 2) / 2)
    lse = math.log(math.exp(1.0) + math.exp(2.0))  # the padded 0 of row 1 and both pads of row 2 are left out
    assert cql.item() == pytest.approx(((lse - 1.0) + (0.0 - 0.0)) / 2)
    assert total.item() == pytest.approx(td.item() + 2.0 * cql.item())
    total.backward()  # d/dq_data: (q - y) / B from the TD term, -coef / B from the CQL term
    assert q_data.grad.tolist() == pytest.approx([(0.5 - 2.0) / 2, (-1.0 - 2.0) / 2])
    with pytest.raises(ValueError, match="at least one candidate"):
        cql_loss(q_data, q_candidates, torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2), 1.0)


@pytest.fixture(scope="module")
def encoder():
    """The frozen encoder, loaded once and shared (features are computed per text alone, so sharing its cache
    changes no figure)."""
    from policies.text_encoder import TextEncoder

    return TextEncoder()


def test_the_cql_term_trains(encoder):
    """The reference computed the CQL term and trained on MSE alone; here an unseen action is pushed down."""
    config = config_from_dict({"method": "cql_prior", "cql": {"lr": 1e-2}}).cql
    learner = CQLLearner(encoder, config)
    batch = [OfflineTransition("s", "go up", 0.0, "end", True, (), ("go up", "go down"))]
    for _ in range(100):
        row = learner.update(batch)
    q = learner.q_values("s", ["go up", "go down"])
    assert q[0] - q[1] > 1.0 and row["loss_cql"] < 0.4 and math.isfinite(row["loss_td"])


def test_standardize_centres_and_scales_the_features(tmp_path, encoder):
    config = config_from_dict({"method": "cql_prior"}).cql
    learner = CQLLearner(encoder, config)
    pairs = [(f"at {i}", a) for i in range(4) for a in ACTIONS]
    texts = [pair_text(s, a) for s, a in pairs]
    assert torch.equal(learner.features(pairs), encoder.encode(texts))  # the identity until standardized
    learner.standardize(pairs + pairs[:3])  # repeated pairs count once
    features, varying = learner.features(pairs), encoder.encode(texts).std(0, unbiased=False) >= MIN_FEATURE_STD
    assert features.mean(0).abs().max() < 1e-5 and 300 < int(varying.sum()) < 384  # MiniLM has constant features
    assert (features.std(0, unbiased=False)[varying] - 1).abs().max() < 1e-3
    assert features.std(0, unbiased=False)[~varying].max() < 1  # left near 0, not blown up to unit spread
    learner.save(tmp_path)
    restored = CQLLearner(encoder, config)
    restored.restore(tmp_path)
    assert torch.equal(restored.features(pairs), features)


def test_separate_features_concatenate_state_and_action_each_standardized_over_its_own_texts(tmp_path, encoder):
    config = config_from_dict({"method": "cql_prior", "cql": {"q_features": "separate"}}).cql
    learner = CQLLearner(encoder, config)
    states = [f"at {i}" for i in range(5)]
    pairs = [(s, a) for s in states for a in ACTIONS[:2]]  # each state twice, each action five times
    dim = encoder.dim
    assert learner.online[0].in_features == 2 * dim
    raw = learner.features(pairs)
    assert torch.equal(raw[:, :dim], encoder.encode([s for s, _ in pairs]))
    assert torch.equal(raw[:, dim:], encoder.encode([a for _, a in pairs]))
    learner.standardize(pairs)
    by_state, by_action = encoder.encode(states), encoder.encode(list(ACTIONS[:2]))
    assert torch.allclose(learner.feature_shift, torch.cat([by_state.mean(0), by_action.mean(0)]))
    expected = torch.cat([by_state.std(0, unbiased=False), by_action.std(0, unbiased=False)]).clamp(min=MIN_FEATURE_STD)
    assert torch.allclose(learner.feature_scale, expected)
    learner.save(tmp_path)
    restored = CQLLearner(encoder, config)
    restored.restore(tmp_path)
    assert torch.equal(restored.features(pairs), learner.features(pairs))


def record(step, action="go up", proposals=None, terminated=False):
    next_proposals = None if proposals is None else (() if terminated else proposals)
    return Record(0, step, "Cross.", f"at {step}", action, float(terminated), f"at {step + 1}", terminated, False,
                  ACTIONS, ACTIONS, proposals, next_proposals)


def write(path, records, **meta):
    with DatasetWriter(path) as writer:
        for r in records:
            writer.add(r)
        writer.commit({"episodes": 1, "env": {"id": "llmrl/FrozenLake4x4-v0", "kwargs": {}}, **meta})
    return path


def test_dataset_round_trip_and_atomic_write(tmp_path):
    records = [record(0, proposals=("go up", "go up", "go left")), record(1, "go left", ("go left",), True)]
    path = write(tmp_path / "d", records, behaviour="llm")
    meta, back = load_dataset(path)
    assert back == records and meta["transitions"] == 2 and meta["version"] == 1 and meta["behaviour"] == "llm"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary directory left
    with pytest.raises(DatasetError, match="already exists; choose another output or set overwrite: true"):
        DatasetWriter(path)
    with pytest.raises(ValueError, match="`action` must be one of `admissible`"):
        record(0, action="fly")
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "e") as writer:  # a failed collection leaves nothing
        writer.add(records[0])
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_corrupt_datasets_give_clear_errors(tmp_path):
    def fresh(name):
        return write(tmp_path / name, [record(i) for i in range(3)])

    path = fresh("flip")  # a flipped letter: every line still parses, the checksum catches it
    data = bytearray((path / TRANSITIONS).read_bytes())
    data[data.index(b"at 1")] ^= 0x20
    (path / TRANSITIONS).write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"{TRANSITIONS}: sha256 .* differs .*llmrl collect CONFIG"):
        load_dataset(path)
    path = fresh("brace")  # a flipped structural byte: the line is named
    data = bytearray((path / TRANSITIONS).read_bytes())
    data[data.index(b"\n") + 1] ^= 0x01
    (path / TRANSITIONS).write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"line 2 is not valid JSON .* corrupt or truncated"):
        load_dataset(path)
    path = fresh("cut")
    (path / TRANSITIONS).write_bytes((path / TRANSITIONS).read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"line 3 is incomplete .* truncated; re-create the dataset"):
        load_dataset(path)
    path = fresh("lines")  # a whole line lost: the count is named
    lines = (path / TRANSITIONS).read_bytes().splitlines(keepends=True)
    (path / TRANSITIONS).write_bytes(b"".join(lines[:2]))
    with pytest.raises(DatasetError, match="holds 2 transitions, meta.json says 3"):
        load_dataset(path)
    path = fresh("meta")
    (path / META).unlink()
    with pytest.raises(DatasetError, match=r"meta.json is missing: .* not a complete dataset"):
        load_dataset(path)
    path = fresh("version")
    meta = json.loads((path / META).read_text())
    (path / META).write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(DatasetError, match="format version 2; this llmrl reads version 1"):
        read_meta(path)
    path = fresh("field")  # a bad value with a matching checksum: the line and the field are named
    line = json.dumps({**record(0).to_json(), "reward": "high"}) + "\n"
    (path / TRANSITIONS).write_text(line)
    digest = hashlib.sha256(line.encode()).hexdigest()
    (path / META).write_text(json.dumps({**meta, "sha256": digest, "transitions": 1}))
    with pytest.raises(DatasetError, match=r"line 1: `reward` must be a finite number"):
        load_dataset(path)


def test_collect_random_frozenlake_through_the_cli(tmp_path, capsys):
    out = tmp_path / "random"
    assert main(["collect", COLLECT, "--set", f"output={out}", "--set", "episodes=5", "--set", "use_ray=false"]) == 0
    assert "wrote" in capsys.readouterr().out
    meta, records = load_dataset(out)
    assert meta["episodes"] == 5 == len({r.episode for r in records}) and meta["transitions"] == len(records)
    assert meta["behaviour"] == "random" and meta["config"]["episodes"] == 5 and not meta["has_proposals"]
    assert all(r.proposals is None and r.action in ACTIONS for r in records)
    assert sum(r.terminated or r.truncated for r in records) == 5
    assert main(["collect", COLLECT, "--set", f"output={out}", "--set", "epsilon=2"]) == 2
    assert "epsilon: 2.0 is not allowed; must be >= 0 and <= 1" in capsys.readouterr().err
    assert main(["collect", COLLECT, "--set", f"output={out}", "--set", "episodes=1"]) == 2  # exists already
    assert "already exists" in capsys.readouterr().err


def random_dataset(path, episodes, seed=0):
    config = load_collect_config(COLLECT, [f"output={path}", f"episodes={episodes}", f"seed={seed}", "use_ray=false"])
    collect(config)
    return path


def test_collect_from_a_dqn_checkpoint(tmp_path):
    run = Experiment(config_from_dict({
        "method": "dqn_prior", "name": "dqn", "use_ray": False,
        "dqn": {"use_prior": False, "learning_starts": 8, "batch_size": 8, "updates_per_episode": 1},
        "train": {"total_env_steps": 10, "output_dir": str(tmp_path)}}), progress=False).run()
    config = load_collect_config(COLLECT, [f"output={tmp_path / 'data'}", "episodes=2", f"checkpoint={run}",
                                           "behaviour=checkpoint", "soft=true", "use_ray=false"])
    meta, records = collect(config), load_dataset(tmp_path / "data")[1]
    assert meta["episodes"] == 2 and len(records) == meta["transitions"] and not meta["has_proposals"]
    with pytest.raises(ConfigError, match="checkpoint: None is not allowed; behaviour checkpoint needs"):
        load_collect_config(COLLECT, ["behaviour=checkpoint"])


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs" / "collect").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_collect_configs_load(path):
    config = load_collect_config(path)
    assert config.episodes >= 1 and config.env.id.startswith("llmrl/")


class ScriptedRuntime(LocalRuntime):
    """A runtime whose LLM always proposes 'go right', 'go right', 'go down' and scores ' go right' -1, ' go down'
    -2 and every other action -5 (no model is loaded); `scored` counts the contexts it scored."""

    scored = 0

    def scorer(self, backend, pool, value_head=None):
        from policies.backend import GenerateResult, ScoreResult

        runtime = self

        class LLM:
            def generate(self, prompts, n=1, **kwargs):
                return GenerateResult(texts=[["go right", "Go right.", "go down"][:n] for _ in prompts],
                                      versions=[0] * len(prompts))

            def score(self, contexts, candidates, **kwargs):
                runtime.scored += len(contexts)
                table = {" go right": -1.0, " go down": -2.0}
                return ScoreResult(logprobs=[[table.get(c, -5.0) for c in cands] for cands in candidates],
                                   versions=[0] * len(contexts))
        return LLM()


def test_collect_epsilon_greedy_over_the_llm_stores_proposals(tmp_path):
    config = load_collect_config(COLLECT, [f"output={tmp_path / 'eps'}", "episodes=3", "behaviour=epsilon-greedy",
                                           "epsilon=0.0", "proposals.k=3"])
    meta = collect(config, runtime=ScriptedRuntime())
    records = load_dataset(tmp_path / "eps")[1]
    assert meta["has_proposals"] and meta["proposals_generated"] > 0 and meta["proposals_unmatched"] == 0
    assert all(r.action == "go right" and r.proposals == ("go right", "go right", "go down") for r in records)
    assert all(r.next_proposals == (() if r.terminated else r.proposals) for r in records)


def cql_config(tmp_path, dataset, updates, use_prior=False, **cql):
    return config_from_dict({
        "method": "cql_prior", "name": "cql", "use_ray": use_prior,
        "cql": {"dataset": str(dataset), "use_prior": use_prior, "batch_size": 16, "updates_per_iteration": 2,
                "eval_episodes": 1, **cql},
        "proposals": {"k": 2, "max_resamples": 0}, "pool": {"num_workers": 1, "cpus_per_worker": 0.5},
        "train": {"total_updates": updates, "output_dir": str(tmp_path), "checkpoint_every": 1}})


def test_cql_runs_trains_and_resumes_exactly(tmp_path, encoder):
    from learners.dqn_prior.learner import q_mlp
    from learners.state_io import load_state

    dataset = random_dataset(tmp_path / "data", episodes=4)
    whole = Experiment(cql_config(tmp_path / "a", dataset, 6, standardize_features=True), progress=False,
                       encoder=encoder).run()
    part = Experiment(cql_config(tmp_path / "b", dataset, 4, standardize_features=True), progress=False,
                      encoder=encoder).run()
    Experiment(cql_config(tmp_path / "b", dataset, 6, standardize_features=True), run_dir=part, progress=False,
               encoder=encoder).run()

    def figures(run_dir):
        return [{k: v for k, v in row.items() if k != "time_s"} for row in read_metrics(run_dir)]

    rows = figures(whole)
    assert figures(part) == rows and len(rows) == 3 and rows[-1]["updates"] == 6
    for key in ("loss", "loss_td", "loss_cql", "q_data", "success_rate", "mean_return"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert all(r["candidates"] == 4.0 and r["proposals_generated"] == 0 for r in rows)
    state = load_state(whole / "checkpoints" / "checkpoint_000003", "q_learner")
    trained = state["online"]
    assert state["feature_shift"].abs().max() > 0 and (state["feature_scale"] < 1).all()  # standardized
    initial = q_mlp(384, (64, 64), seed=0).state_dict()
    assert all(trained[k].shape == v.shape for k, v in initial.items())
    assert any(not torch.equal(trained[k], v) for k, v in initial.items())  # the parameters changed
    other = random_dataset(tmp_path / "other", episodes=3, seed=1)
    with pytest.raises(DatasetError, match="is not the dataset .* was trained on"):
        Experiment(cql_config(tmp_path / "b", other, 8), run_dir=part, progress=False, encoder=encoder).run()
    with pytest.raises(ConfigError, match=r"cql.cql_coef: -1.0 is not allowed; must be >= 0"):
        cql_config(tmp_path, dataset, 6, cql_coef=-1.0)


def test_evaluation_greedy_or_sampled(tmp_path, encoder):
    """Tied Q-values: the argmax keeps taking the first action ("go left" into the start corner's edge, the whole
    horizon); sampling walks at random, so some of the episodes end early (in a hole, or at the goal)."""
    from learners.cql_prior.algorithm import CQLPriorAlgorithm

    dataset = random_dataset(tmp_path / "data", episodes=2)
    lengths = {}
    for policy in ("greedy", "sample"):
        config = cql_config(tmp_path, dataset, 2, eval_policy=policy, eval_episodes=8)
        algorithm = CQLPriorAlgorithm(config, LocalRuntime(), encoder=encoder)
        torch.nn.init.zeros_(algorithm.learner.online[-1].weight)
        torch.nn.init.zeros_(algorithm.learner.online[-1].bias)
        lengths[policy] = algorithm._evaluate()["eval_length"]
    assert lengths["greedy"] == 20.0 and lengths["sample"] < 20.0


def test_cql_prior_exact_top_k_candidates_scored_once_per_state(tmp_path, encoder):
    from learners.cql_prior.algorithm import CQLPriorAlgorithm

    dataset = random_dataset(tmp_path / "data", episodes=3)
    config = cql_config(tmp_path, dataset, 2, use_prior=True, prior="exact", exact_top_k=2)
    runtime = ScriptedRuntime()
    algorithm = CQLPriorAlgorithm(dataclasses.replace(config, use_ray=False), runtime, encoder=encoder)
    algorithm.step()
    states = {r.prompt for r in algorithm.records} | {r.next_prompt for r in algorithm.records if not r.terminated}
    assert runtime.scored == len(states) == len(algorithm.exact_prior.cache)  # each state scored once, batched

    def top(admissible):  # the two best-scored, in the env's order
        return tuple(a for a in admissible if a in ("go right", "go down"))

    for record, transition in zip(algorithm.records, algorithm.data):
        assert len(top(record.admissible)) == 2
        assert transition.actions == top(record.admissible) + ((record.action,) if record.action not in
                                                                top(record.admissible) else ())
        assert transition.next_actions == (() if record.terminated else top(record.next_admissible))
    assert algorithm.last_eval["candidates"] == 2.0 and algorithm.proposals.stats.generated == 0
    algorithm.save(tmp_path / "ckpt")
    again = CQLPriorAlgorithm(dataclasses.replace(config, use_ray=False), runtime, encoder=encoder)
    again.restore(tmp_path / "ckpt")
    assert again.exact_prior.cache == algorithm.exact_prior.cache
    with pytest.raises(ConfigError, match="cql.exact_top_k: -1 is not allowed"):
        cql_config(tmp_path, dataset, 2, exact_top_k=-1)


@pytest.mark.usefixtures("ray_cluster")
def test_cql_prior_with_the_real_llm_through_a_ray_pool(tmp_path):
    dataset = random_dataset(tmp_path / "data", episodes=3)
    run = Experiment(cql_config(tmp_path, dataset, 2, use_prior=True, batch_size=8), progress=False).run()
    rows = read_metrics(run)
    assert rows[0]["proposals_generated"] >= 2 and 1 <= rows[0]["candidates"] <= 4  # 4: nothing matched, uniform
    assert math.isfinite(rows[0]["loss_cql"]) and rows[-1]["updates"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["use_prior"] and summary["proposals_generated"] >= 2
    exact = Experiment(cql_config(tmp_path / "exact", dataset, 2, use_prior=True, batch_size=8, prior="exact",
                                  exact_top_k=3), progress=False).run()
    rows = read_metrics(exact)
    assert rows[0]["candidates"] == 3.0 and rows[0]["proposals_generated"] == 0 and math.isfinite(rows[0]["loss_cql"])


@pytest.mark.usefixtures("ray_cluster")
def test_collect_llm_behaviour_through_a_ray_pool(tmp_path):
    config = load_collect_config(COLLECT, [f"output={tmp_path / 'llm'}", "behaviour=llm", "episodes=1",
                                           "proposals.k=2", "proposals.max_resamples=0",
                                           "pool.cpus_per_worker=0.5"])
    meta = collect(config)
    records = load_dataset(tmp_path / "llm")[1]
    assert meta["has_proposals"] and meta["proposals_generated"] >= 2 and len(records) == meta["transitions"]
    for r in records:
        assert r.action in r.proposals and 1 <= len(r.proposals) <= 4
        assert r.next_proposals == () if r.terminated else len(r.next_proposals) >= 1

