"""Keep library chatter out of the error stream of a task log.

An Airflow task log shows everything a task writes to stderr as ERROR: the "Loading weights: 0%|..." progress bars
of transformers and huggingface_hub (tqdm), transformers' own log handler (it prints its warnings to stderr) and
Python warnings all look like failures there. ``quiet_libraries`` turns the bars off and sends the warnings
through ``logging``, where the task log shows them at WARNING under the library's logger name.
"""

from __future__ import annotations

import logging
import os
import sys

QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # read by huggingface_hub when imported; transformers follows it
    "TOKENIZERS_PARALLELISM": "false",  # else the tokenizers warn on stderr when a process forks
}


def quiet_libraries() -> None:
    """Call early in a task (``pre_execute``) and in a worker before it imports the libraries.

    Libraries imported later read the environment; libraries already imported (the preloading workers of
    ``worker_preload`` import transformers before forking their tasks) are told directly. transformers' warnings
    go through ``logging`` at WARNING when it is already imported; when it is not, its stderr handler is limited
    to errors (``TRANSFORMERS_VERBOSITY``), since that handler is made at its import.
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    logging.captureWarnings(True)  # warnings.warn(...) -> the "py.warnings" logger, at WARNING
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers.utils.logging" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
        transformers_logging.set_verbosity_warning()
    else:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
