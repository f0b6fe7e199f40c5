"""The embedded Ray that `llmrl run` starts keeps token authentication on and its dashboard (Ray Jobs server) on
127.0.0.1: checked on a real Ray started in a subprocess with its own HOME (so its token is its own) and port."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.config import ConfigError
from cluster.ray_runtime import RayConfig, ensure_ray

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, urllib.error, urllib.request
import psutil, ray
from cluster.ray_runtime import RayConfig, ensure_ray
port = int(sys.argv[1])
ensure_ray(RayConfig(num_cpus=1, dashboard=True, dashboard_port=port))
def status(headers):
    try:
        return urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/", headers=headers),
                                      timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code
token = open(sys.argv[2] + "/.ray/auth_token").read().strip()
listening = sorted({c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN"})
print(json.dumps({"listening": listening, "no_token": status({}), "wrong_token": status({"Authorization": "Bearer x"}),
                  "token": status({"Authorization": f"Bearer {token}"})}))
ray.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_ray_has_token_auth_and_a_local_dashboard(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", PROBE, str(_free_port()), str(home)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"listening": ["127.0.0.1"], "no_token": 401, "wrong_token": 403, "token": 200}


def test_token_auth_cannot_be_switched_off(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(ConfigError, match="RAY_AUTH_MODE=disabled is set: llmrl keeps Ray's token authentication on"):
        ensure_ray(RayConfig(num_cpus=1))


def test_dashboard_settings_are_checked():
    with pytest.raises(ConfigError, match="dashboard_port"):
        RayConfig(dashboard_port=0)
    with pytest.raises(ConfigError, match="dashboard_host"):
        RayConfig(dashboard_host="")
