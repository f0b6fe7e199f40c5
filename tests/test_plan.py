"""`llmrl plan`: node lists parsed, bundles packed first-fit-decreasing (CPU work off GPU nodes, the head always
up), what cannot fit refused with the role, the bundle and the node types named; the command's table and JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.cli import main
from cluster.config import ConfigError
from cluster.methods import load_config
from cluster.plan import (NodeType, PlanError, local_node_types, parse_nodes, plan_placement, resource_bundles)

REPO = Path(__file__).resolve().parents[1]


def test_node_lists_are_parsed():
    assert parse_nodes("1x8CPU,2x8CPU+8GPU") == [NodeType("8CPU", {"CPU": 8.0}, 1),
                                                 NodeType("8CPU+8GPU", {"CPU": 8.0, "GPU": 8.0}, 2)]
    assert parse_nodes("4cpu+0.5gpu") == [NodeType("4cpu+0.5gpu", {"CPU": 4.0, "GPU": 0.5}, 1)]
    assert parse_nodes("2x16CPU+1accelerator_type:A100")[0].resources == {"CPU": 16.0, "accelerator_type:A100": 1.0}
    for bad, match in (("8", "not AMOUNT\\+RESOURCE"), ("1xCPU", "not AMOUNT\\+RESOURCE"), ("0x8CPU", "count of 0"),
                       ("1x8CPU,,", "not a node type")):
        with pytest.raises(ConfigError, match=match):
            parse_nodes(bad)


def test_biggest_bundles_first_and_cpu_work_off_gpu_nodes():
    types = parse_nodes("1x8CPU,2x8CPU+2GPU")
    roles = [("runner", {"CPU": 1.0}), ("learner", {"CPU": 4.0, "GPU": 1.0}),
             ("scorer[0]", {"CPU": 2.0, "GPU": 1.0}), ("scorer[1]", {"CPU": 2.0, "GPU": 1.0})]
    plan = plan_placement(roles, types)
    assert [(p.role, p.node) for p in plan.placements] == [
        ("runner", "8CPU#0"), ("learner", "8CPU+2GPU#0"), ("scorer[0]", "8CPU+2GPU#0"), ("scorer[1]", "8CPU+2GPU#1")]
    assert [(n.name, n.used, n.left) for n in plan.nodes] == [
        ("8CPU#0", {"CPU": 1.0}, {"CPU": 7.0}),
        ("8CPU+2GPU#0", {"CPU": 6.0, "GPU": 2.0}, {"CPU": 2.0, "GPU": 0.0}),
        ("8CPU+2GPU#1", {"CPU": 2.0, "GPU": 1.0}, {"CPU": 6.0, "GPU": 1.0})]


def test_cpu_work_spills_onto_gpu_nodes_when_the_cpu_nodes_are_full():
    plan = plan_placement([(f"r{i}", {"CPU": 3.0}) for i in range(3)], parse_nodes("1x4CPU,1x8CPU+1GPU"))
    assert [p.node for p in plan.placements] == ["4CPU#0", "8CPU+1GPU#0", "8CPU+1GPU#0"]


def test_what_cannot_fit_is_named():
    types = parse_nodes("1x8CPU,1x8CPU+2GPU")
    with pytest.raises(PlanError, match=r"^learner needs 1 CPU, 4 GPU on one node, but no node type holds that: "
                                        r"1x 8CPU \(8 CPU\); 1x 8CPU\+2GPU \(8 CPU, 2 GPU\)"):
        plan_placement([("runner", {"CPU": 1.0}), ("learner", {"CPU": 1.0, "GPU": 4.0})], types)
    scorers = [(f"scorer_worker[{i}]", {"CPU": 1.0, "GPU": 1.0}) for i in range(5)]
    with pytest.raises(PlanError, match=r"full at its maximum size .*scorer_worker\[2\] \(1 CPU, 1 GPU\), "
                                        r"scorer_worker\[3\].*scorer_worker\[4\].* do not fit; "
                                        r"it would take 2 more 8CPU\+2GPU nodes"):
        plan_placement(scorers, types)
    assert isinstance(PlanError("x"), ConfigError)  # the CLI prints it as one line, exit status 2


def test_resource_bundles_of_a_run_and_of_a_run_in_one_process():
    config = load_config(REPO / "configs" / "glam_babyai.yaml")
    assert resource_bundles(config) == [("learner", {"CPU": 0.5}), ("scorer_worker[0]", {"CPU": 1.0}),
                                        ("env_runner[0]", {"CPU": 0.25})]
    assert resource_bundles(load_config(REPO / "configs" / "glam_babyai.yaml", ["use_ray=false"])) == [
        ("driver", {"CPU": 0.5})]


def test_this_machine_follows_the_configs_ray_section():
    config = load_config(REPO / "configs" / "glam_babyai.yaml", ["ray.num_cpus=6", "ray.num_gpus=2"])
    assert local_node_types(config) == [NodeType("this-machine", {"CPU": 6.0, "GPU": 2.0}, 1)]


def test_the_8_gpu_example_on_the_cluster_config(capsys):
    assert main(["plan", str(REPO / "configs" / "glam_cluster_8gpu.yaml"), "--cluster",
                 str(REPO / "ray_config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "learner           8 CPU, 1 GPU            worker.gpu#0" in out
    assert "env_runner[15]    0.25 CPU                head.cpu#0" in out
    assert "worker.gpu#0      used 36/96 CPU, 8/8 GPU; left 60 CPU" in out
    assert "nodes not needed: 3x worker.gpu" in out
    assert main(["plan", str(REPO / "configs" / "glam_cluster_8gpu.yaml"), "--nodes", "1x8CPU,1x96CPU+8GPU",
                 "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {p["node"] for p in plan["placements"]} == {"8CPU#0", "96CPU+8GPU#0"}


def test_the_command_refuses_a_run_that_does_not_fit(capsys):
    assert main(["plan", str(REPO / "configs" / "glam_cluster_8gpu.yaml"), "--nodes", "1x8CPU,1x96CPU+4GPU"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmrl plan: error: the cluster is full") and "it would take 1 more 96CPU+4GPU node" in err
    assert main(["plan", str(REPO / "configs" / "glam_babyai.yaml"), "--nodes", "1x8CPU", "--cluster", "x"]) == 2
    assert "give --cluster or --nodes, not both" in capsys.readouterr().err
