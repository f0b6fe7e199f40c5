"""Config loading: keys, types and allowed values are checked, errors name them; dotted overrides."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import pytest

from actors.env_runner import RunnerConfig
from actors.pool_config import PoolConfig
from cluster.config import (ConfigError, FieldError, apply_overrides, check_range, from_dict, load_yaml,
                            set_dotted, to_dict)
from cluster.ray_runtime import RayConfig
from learners.icpi.config import ICPIConfig
from learners.ppo.config import PPOConfig
from policies.config import BackendConfig, LoraConfig, VLLMConfig
from policies.value_head import ValueHeadConfig


@dataclass(frozen=True)
class Root:
    """Every validated section, as a root config would hold them."""

    ray: RayConfig = field(default_factory=RayConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    value_head: ValueHeadConfig = field(default_factory=ValueHeadConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    icpi: ICPIConfig = field(default_factory=ICPIConfig)
    steps: int = 1

    def __post_init__(self):
        check_range(self, "steps", ge=1)
        if self.steps > 100:  # a cross-section check naming its key itself
            raise ConfigError(f"steps: {self.steps} is more than pool.num_workers allows")


def test_round_trip_with_nested_and_optional_sections():
    config = from_dict(BackendConfig, {"model": "m", "lora": {"r": 4, "target_modules": ["q_proj"]}, "dtype": "bfloat16"})
    assert config.lora == LoraConfig(r=4, target_modules=("q_proj",))
    assert from_dict(BackendConfig, to_dict(config)) == config
    assert from_dict(BackendConfig, {"lora": None}).lora is None
    assert from_dict(Root, to_dict(Root())) == Root()


@pytest.mark.parametrize("data,message", [
    ({"modle": "x"}, r"config: unknown key\(s\) 'modle'; allowed keys: .*model"),
    ({"dtype": "fp8"}, r"^dtype: 'fp8' is not allowed; choose one of 'auto', 'float32'"),
    ({"max_batch_tokens": "big"}, r"^max_batch_tokens: expected an integer"),
    ({"max_batch_tokens": True}, r"expected an integer"),
    ({"lora": {"rank": 3}}, r"^lora: unknown key\(s\) 'rank'; allowed keys: alpha, dropout, r"),
    ({"lora": {"target_modules": "q_proj"}}, r"^lora.target_modules: expected a list"),
    (["model"], r"expected a mapping of BackendConfig fields"),
])
def test_errors_name_the_key_and_what_is_allowed(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(BackendConfig, data)


def test_yaml_file(tmp_path):
    path = tmp_path / "backend.yaml"
    path.write_text("model: smollm2-135m\nlora:\n  r: 2\n")
    assert load_yaml(BackendConfig, path).lora.r == 2
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(BackendConfig, tmp_path / "missing.yaml")


def test_yaml_errors_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("backend:\n  lora:\n    r: 0\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: backend.lora.r: 0 is not allowed; must be >= 1")):
        load_yaml(Root, path)
    path.write_text("steps: 101\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: steps: 101 is more than")):
        load_yaml(Root, path)
    path.write_text("stpes: 1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: unknown key(s) 'stpes'")):
        load_yaml(Root, path)


# (section data, the message: dotted key, value, what is allowed)
OUT_OF_RANGE = [
    ({"ppo": {"lr": -1}}, "ppo.lr: -1.0 is not allowed; must be > 0"),
    ({"ppo": {"lr": 0}}, "ppo.lr: 0.0 is not allowed; must be > 0"),
    ({"ppo": {"gamma": 2.0}}, "ppo.gamma: 2.0 is not allowed; must be > 0 and <= 1"),
    ({"ppo": {"gamma": 0}}, "ppo.gamma: 0.0 is not allowed; must be > 0 and <= 1"),
    ({"ppo": {"gae_lambda": 1.5}}, "ppo.gae_lambda: 1.5 is not allowed; must be >= 0 and <= 1"),
    ({"ppo": {"gae_lambda": -0.1}}, "ppo.gae_lambda: -0.1 is not allowed; must be >= 0 and <= 1"),
    ({"ppo": {"clip": 0}}, "ppo.clip: 0.0 is not allowed; must be > 0"),
    ({"ppo": {"value_clip": 0}}, "ppo.value_clip: 0.0 is not allowed; must be null or > 0"),
    ({"ppo": {"entropy_coef": -0.01}}, "ppo.entropy_coef: -0.01 is not allowed; must be >= 0"),
    ({"ppo": {"value_coef": -1}}, "ppo.value_coef: -1.0 is not allowed; must be >= 0"),
    ({"ppo": {"betas": [0.9, 1.0]}}, "ppo.betas: (0.9, 1.0) is not allowed; each item must be >= 0 and < 1"),
    ({"ppo": {"betas": [-0.1, 0.9]}}, "ppo.betas: (-0.1, 0.9) is not allowed; each item must be >= 0 and < 1"),
    ({"ppo": {"betas": [0.9]}}, "ppo.betas: (0.9,) is not allowed; must be two numbers"),
    ({"ppo": {"adam_eps": 0}}, "ppo.adam_eps: 0.0 is not allowed; must be > 0"),
    ({"ppo": {"max_grad_norm": -1}}, "ppo.max_grad_norm: -1.0 is not allowed; must be > 0"),
    ({"ppo": {"epochs": 0}}, "ppo.epochs: 0 is not allowed; must be >= 1"),
    ({"ppo": {"minibatch_size": 0}}, "ppo.minibatch_size: 0 is not allowed; must be >= 1"),
    ({"ppo": {"micro_batch_size": 0}}, "ppo.micro_batch_size: 0 is not allowed; must be >= 1"),
    ({"ppo": {"max_policy_lag": -1}}, "ppo.max_policy_lag: -1 is not allowed; must be >= 0"),
    ({"backend": {"lora": {"r": 0}}}, "backend.lora.r: 0 is not allowed; must be >= 1"),
    ({"backend": {"lora": {"alpha": 0}}}, "backend.lora.alpha: 0 is not allowed; must be > 0"),
    ({"backend": {"lora": {"dropout": 1.0}}}, "backend.lora.dropout: 1.0 is not allowed; must be >= 0 and < 1"),
    ({"backend": {"lora": {"dropout": -0.1}}}, "backend.lora.dropout: -0.1 is not allowed; must be >= 0 and < 1"),
    ({"backend": {"lora": {"target_modules": []}}}, "backend.lora.target_modules: () is not allowed; list at least one"),
    ({"backend": {"vllm": {"tensor_parallel_size": 0}}},
     "backend.vllm.tensor_parallel_size: 0 is not allowed; must be >= 1"),
    ({"backend": {"vllm": {"gpu_memory_utilization": 0}}},
     "backend.vllm.gpu_memory_utilization: 0.0 is not allowed; must be > 0 and <= 1"),
    ({"backend": {"vllm": {"gpu_memory_utilization": 1.5}}},
     "backend.vllm.gpu_memory_utilization: 1.5 is not allowed; must be > 0 and <= 1"),
    ({"backend": {"vllm": {"kv_cache_gib": 0}}}, "backend.vllm.kv_cache_gib: 0.0 is not allowed; must be null or > 0"),
    ({"backend": {"vllm": {"max_model_len": 0}}}, "backend.vllm.max_model_len: 0 is not allowed; must be null or >= 1"),
    ({"backend": {"model": ""}}, "backend.model: '' is not allowed; name a bundled model"),
    ({"backend": {"device": "gpu"}}, "backend.device: 'gpu' is not allowed; choose auto, cpu, cuda or cuda:N"),
    ({"backend": {"device": "cuda:x"}}, "backend.device: 'cuda:x' is not allowed; choose auto, cpu, cuda or cuda:N"),
    ({"backend": {"max_batch_tokens": 0}}, "backend.max_batch_tokens: 0 is not allowed; must be >= 1"),
    ({"backend": {"max_cache_tokens": 0}}, "backend.max_cache_tokens: 0 is not allowed; must be >= 1"),
    ({"backend": {"torch_threads": -2}}, "backend.torch_threads: -2 is not allowed; must be >= -1"),
    ({"backend": {"trainable_layers": -1}}, "backend.trainable_layers: -1 is not allowed; must be >= 0"),
    ({"runner": {"temperature": 0}}, "runner.temperature: 0.0 is not allowed; must be > 0"),
    ({"pool": {"num_workers": 0}}, "pool.num_workers: 0 is not allowed; must be >= 1"),
    ({"pool": {"cpus_per_worker": -1}}, "pool.cpus_per_worker: -1.0 is not allowed; must be >= 0"),
    ({"pool": {"gpus_per_worker": -1}}, "pool.gpus_per_worker: -1.0 is not allowed; must be >= 0"),
    ({"pool": {"cpus_per_worker": 0, "gpus_per_worker": 0}},
     "pool.cpus_per_worker: 0.0 is not allowed; a worker must reserve some resources: "
     "set cpus_per_worker or gpus_per_worker > 0"),
    ({"pool": {"max_retries": -1}}, "pool.max_retries: -1 is not allowed; must be >= 0"),
    ({"pool": {"placement_timeout_s": 0}}, "pool.placement_timeout_s: 0.0 is not allowed; must be > 0"),
    ({"value_head": {"hidden_sizes": [16, 0]}}, "value_head.hidden_sizes: (16, 0) is not allowed; each item must be >= 1"),
    ({"runner": {"num_envs": 0}}, "runner.num_envs: 0 is not allowed; must be >= 1"),
    ({"runner": {"memory": 0}}, "runner.memory: 0 is not allowed; must be >= 1"),
    ({"icpi": {"token_budget": 0}}, "icpi.token_budget: 0 is not allowed; must be >= 1"),
    ({"icpi": {"max_new_tokens": 0}}, "icpi.max_new_tokens: 0 is not allowed; must be >= 1"),
    ({"icpi": {"temperature": -1}}, "icpi.temperature: -1.0 is not allowed; must be >= 0"),
    ({"icpi": {"min_successes": -1}}, "icpi.min_successes: -1 is not allowed; must be >= 0"),
    ({"icpi": {"horizon": 0}}, "icpi.horizon: 0 is not allowed; must be null or >= 1"),
    ({"ray": {"num_cpus": -1}}, "ray.num_cpus: -1 is not allowed; must be null or >= 0"),
    ({"ray": {"num_gpus": -1}}, "ray.num_gpus: -1 is not allowed; must be null or >= 0"),
    ({"ray": {"address": ""}}, "ray.address: '' is not allowed; write null for an embedded Ray"),
    ({"steps": 0}, "steps: 0 is not allowed; must be >= 1"),
]


@pytest.mark.parametrize("data,message", OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in OUT_OF_RANGE])
def test_each_section_checks_its_fields_and_the_error_names_the_dotted_key(data, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        from_dict(Root, data)


def test_glam_run_config_names_the_dotted_key():
    from learners.ppo.run_config import RunConfig

    with pytest.raises(ConfigError, match=re.escape("ppo.lr: -1.0 is not allowed; must be > 0")):
        from_dict(RunConfig, {"ppo": {"lr": -1}})
    with pytest.raises(ConfigError, match=re.escape("backend.lora.r: 0 is not allowed; must be >= 1")):
        from_dict(RunConfig, {"backend": {"lora": {"r": 0}}})


def test_edge_values_load():
    config = from_dict(Root, {
        "ppo": {"gamma": 1.0, "gae_lambda": 0, "value_clip": None, "entropy_coef": 0, "max_policy_lag": 0,
                "betas": [0, 0.999]},
        "backend": {"device": "cuda:1", "torch_threads": 0, "lora": {"r": 1, "dropout": 0.0},
                    "vllm": {"gpu_memory_utilization": 1.0, "kv_cache_gib": None, "max_model_len": 1}},
        "pool": {"gpus_per_worker": 0, "cpus_per_worker": 0.5, "max_retries": 0},
        "value_head": {"hidden_sizes": []},
        "icpi": {"temperature": 0, "horizon": None, "max_retries": 0},
        "ray": {"num_cpus": 0, "num_gpus": 0},
    })
    assert config.ppo.gamma == 1.0 and config.ppo.value_clip is None and config.pool.gpus_per_worker == 0
    assert from_dict(Root, {"pool": {"cpus_per_worker": 0, "gpus_per_worker": 1}}).pool.gpus_per_worker == 1


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match=re.escape("lr: -1 is not allowed; must be > 0")) as info:
        PPOConfig(lr=-1)
    assert isinstance(info.value, FieldError) and (info.value.field, info.value.value) == ("lr", -1)
    with pytest.raises(ConfigError, match="^r: 0 is not allowed"):
        LoraConfig(r=0)
    with pytest.raises(ConfigError, match="^gpu_memory_utilization: 2 is not allowed"):
        VLLMConfig(gpu_memory_utilization=2)


# ---- dotted overrides

BASE = {"ppo": {"lr": 1e-6, "epochs": 4}, "train": {"seed": 0}, "backend": {"lora": {"r": 8}}}


def test_overrides_are_typed_like_yaml():
    result = apply_overrides(BASE, [
        "ppo.lr=1e-5", "train.seed=3", "ppo.drop_stale=true", "backend.lora=null", "ppo.betas=[0.8, 0.9]",
        "runner.env_kwargs={room_size: 5}", "name=run 1", "train.output_dir=a=b", " ppo.clip = 0.1 ",
        "ppo.gamma=-1.5e-1", "ppo.max_grad_norm=2.5E3", "backend.model=nan",
    ])
    assert result == {
        "ppo": {"lr": 1e-5, "epochs": 4, "drop_stale": True, "betas": [0.8, 0.9], "clip": 0.1, "gamma": -0.15,
                "max_grad_norm": 2500.0},
        "train": {"seed": 3, "output_dir": "a=b"},
        "backend": {"lora": None, "model": "nan"},
        "runner": {"env_kwargs": {"room_size": 5}},
        "name": "run 1",
    }
    assert type(result["ppo"]["lr"]) is float and type(result["train"]["seed"]) is int


def test_overrides_nest_and_do_not_change_the_input():
    before = copy.deepcopy(BASE)
    result = apply_overrides(BASE, ["ppo.lr=1e-5", "a.b.c=1", "backend.lora.alpha=32"])
    assert BASE == before
    assert result["a"] == {"b": {"c": 1}} and result["backend"]["lora"] == {"r": 8, "alpha": 32}
    assert apply_overrides({"backend": {"lora": None}}, ["backend.lora.r=4"]) == {"backend": {"lora": {"r": 4}}}
    assert apply_overrides(BASE, []) == BASE and apply_overrides(BASE, []) is not BASE


def test_set_dotted_takes_typed_values():
    before = copy.deepcopy(BASE)
    assert set_dotted(BASE, "ppo.betas", (0.8, 0.9))["ppo"]["betas"] == (0.8, 0.9)
    assert BASE == before


@pytest.mark.parametrize("override", ["ppo.lr", "=1", "ppo.lr=", "ppo..lr=1", ".lr=1", "ppo.lr.x=1", "ppo.lr=[1"])
def test_malformed_overrides_name_the_override_and_the_fix(override):
    with pytest.raises(ConfigError, match=re.escape(repr(override)) + ".*write KEY=VALUE, e.g. ppo.lr=1e-5"):
        apply_overrides(BASE, [override])


def test_overridden_config_is_checked_on_load():
    with pytest.raises(ConfigError, match=r"ppo: unknown key\(s\) 'lrr'; allowed keys: .*lr"):
        from_dict(Root, apply_overrides({}, ["ppo.lrr=1e-5"]))
    with pytest.raises(ConfigError, match=re.escape("ppo.lr: -1e-05 is not allowed; must be > 0")):
        from_dict(Root, apply_overrides({}, ["ppo.lr=-1e-5"]))
    assert from_dict(Root, apply_overrides({}, ["ppo.lr=1e-5", "backend.lora.r=4"])).backend.lora.r == 4
