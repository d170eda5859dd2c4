"""Workers import torch and the encoder code before forking their tasks (latechunk_operators.worker_preload). That is
safe
only while nothing initialises CUDA in the worker: a task forked after CUDA was initialised cannot use it (torch's
"bad fork"). A fresh interpreter does what a preloading worker does (records every torch.cuda call that could
initialise CUDA, imports PRELOADED_MODULES), then forks a task, which must be free to use CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import importlib, json, os, sys
import torch

calls = []
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "get_device_name",
             "get_device_properties", "is_bf16_supported", "mem_get_info", "empty_cache", "synchronize"):
    original = getattr(torch.cuda, name)
    def recorded(*args, _name=name, _original=original, **kwargs):
        calls.append(_name)
        return _original(*args, **kwargs)
    setattr(torch.cuda, name, recorded)

from latechunk_operators.worker_preload import PRELOADED_MODULES
for module in PRELOADED_MODULES:
    importlib.import_module(module)
parent_initialized = torch.cuda.is_initialized()
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the task
    os.close(read)
    task = {"bad_fork": torch.cuda._is_in_bad_fork(), "initialized": torch.cuda.is_initialized()}
    torch.ones(3).sum().item()  # the task runs torch as if it had imported it itself
    os.write(write, json.dumps(task).encode())
    os._exit(0)
os.close(write)
task = json.loads(os.read(read, 4096))
_, status = os.waitpid(pid, 0)
print(json.dumps({"calls": calls, "parent_initialized": parent_initialized, "task": task,
                  "task_exit": os.waitstatus_to_exitcode(status), "modules": list(PRELOADED_MODULES)}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_task_forked_from_a_preloading_worker_can_use_cuda():
    path = [str(REPO / "include"), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "latechunk.embedding.encoders" in result["modules"]
    assert result["calls"] == [], f"importing the preloaded modules called torch.cuda: {result['calls']}"
    assert result["parent_initialized"] is False
    assert result["task"] == {"bad_fork": False, "initialized": False}
    assert result["task_exit"] == 0
