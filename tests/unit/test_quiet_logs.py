"""A task that loads a model writes no progress bar and no warning to stderr (which the task log shows as ERROR):
a process that imported transformers before the task started, as the preloading workers do, loads a checkpoint
after ``quiet_libraries``; the same load without it is the control that shows the bar would be there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

pytestmark = pytest.mark.slow

TASK = """
import logging, sys, warnings
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
import transformers.models.auto.tokenization_auto  # what worker_preload imports before forking a task
if sys.argv[2] == "quiet":
    from latechunk.quiet_logs import quiet_libraries
    quiet_libraries()
from latechunk.embedding.encoders import load_encoder
load_encoder(sys.argv[1], device="cpu")
from transformers.utils import logging as transformers_logging
transformers_logging.get_logger("transformers.modeling_utils").warning("an advisory of transformers")
warnings.warn("a library's warning")
"""


def run_task(model_dir: Path, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")])}
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE"):
        env.pop(name, None)  # start from the library defaults, as a worker without settings does
    return subprocess.run([sys.executable, "-c", TASK, str(model_dir), mode], env=env, capture_output=True,
                          text=True, timeout=600, check=True)


def test_loading_a_model_writes_no_progress_bar_or_warning_to_stderr(tiny_bert_dir):
    loud = run_task(tiny_bert_dir, "loud")
    assert "Loading weights" in loud.stderr and "an advisory of transformers" in loud.stderr, "the control"

    quiet = run_task(tiny_bert_dir, "quiet")
    assert quiet.stderr == ""
    assert "WARNING transformers.modeling_utils an advisory of transformers" in quiet.stdout
    assert "WARNING py.warnings" in quiet.stdout and "a library's warning" in quiet.stdout
