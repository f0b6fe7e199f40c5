"""Config loading: keys, types and allowed values are checked, errors name them."""
from __future__ import annotations

import pytest

from cluster.config import ConfigError, from_dict, load_yaml, to_dict
from policies.config import BackendConfig, LoraConfig


def test_round_trip_with_nested_and_optional_sections():
    config = from_dict(BackendConfig, {"model": "m", "lora": {"r": 4, "target_modules": ["q_proj"]}, "dtype": "bfloat16"})
    assert config.lora == LoraConfig(r=4, target_modules=("q_proj",))
    assert from_dict(BackendConfig, to_dict(config)) == config
    assert from_dict(BackendConfig, {"lora": None}).lora is None


@pytest.mark.parametrize("data,message", [
    ({"modle": "x"}, r"config: unknown key\(s\) 'modle'; allowed keys: .*model"),
    ({"dtype": "fp8"}, r"config.dtype: 'fp8' is not allowed; choose one of 'auto', 'float32'"),
    ({"max_batch_tokens": "big"}, r"config.max_batch_tokens: expected an integer"),
    ({"max_batch_tokens": True}, r"expected an integer"),
    ({"lora": {"rank": 3}}, r"config.lora: unknown key\(s\) 'rank'; allowed keys: alpha, dropout, r"),
    ({"lora": {"target_modules": "q_proj"}}, r"config.lora.target_modules: expected a list"),
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
