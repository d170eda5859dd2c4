"""Per-task import cost: how long a task process takes to import what its operator and ``execute`` import.

Every task instance runs in a new process, so these imports are paid once per task instance. Airflow's task runner
is already loaded in that process, so it is imported first and not counted. Each task's modules are imported in a
fresh interpreter (``--repeats`` times, median reported), and the report says whether torch or
transformers came along. ``--baseline DIR`` measures another checkout the same way in the same run (e.g. a
``git worktree`` of an older commit), and prints the ratio.

    python bench/task_imports.py
    git worktree add /tmp/before <commit> && python bench/task_imports.py --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What each operator's execute() imports (the operator module itself is imported when the DAG file is parsed).
TASK_IMPORTS = {
    "extract": ["latechunk_operators.extract", "latechunk_operators.hooks", "latechunk.pipeline.extract"],
    "index": ["latechunk_operators.index", "latechunk_operators.hooks", "latechunk.pipeline.index"],
    "annotate": ["latechunk_operators.annotate", "latechunk.pipeline.annotate"],
    "embed": ["latechunk_operators.embed", "latechunk.pipeline.embed", "latechunk.embedding.encoders"],
    "validate": ["latechunk_operators.validate", "latechunk.pipeline.validate"],
}
# Before the stage modules were split, operators imported the package, which imported every stage.
PACKAGE_IMPORT = "latechunk.pipeline"

PROBE = """
import importlib, json, sys, time
import airflow.sdk.execution_time.task_runner
started = time.perf_counter()
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        pass
print(json.dumps({"seconds": time.perf_counter() - started,
                  "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def measure(checkout: Path, modules: list[str], repeats: int) -> dict:
    path = f"{checkout / 'include'}:{checkout / 'plugins'}"
    runs = []
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, "-c", PROBE, *modules], env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True, cwd=checkout,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {"seconds": statistics.median(run["seconds"] for run in runs), "torch": runs[0]["torch"],
            "transformers": runs[0]["transformers"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured the same way")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    results = {}
    print(f"{'task':<10} {'seconds':>8} {'torch':>6}" + (f" {'baseline s':>11} {'ratio':>6}" if args.baseline else ""))
    for task, modules in TASK_IMPORTS.items():
        current = measure(REPO, modules, args.repeats)
        row = f"{task:<10} {current['seconds']:8.2f} {'yes' if current['torch'] else 'no':>6}"
        results[task] = {"current": current}
        if args.baseline:
            before = measure(args.baseline, [*modules, PACKAGE_IMPORT], args.repeats)
            results[task]["baseline"] = before
            row += f" {before['seconds']:11.2f} {before['seconds'] / current['seconds']:6.1f}x"
        print(row, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
