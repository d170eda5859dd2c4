"""Numbers and model names as people read them, for the run report and the trends page.

Counts are exact, with thousands separators (``1,234,567``); measured values keep three significant digits
(``0.984``, ``12,300``, ``0.00123``, trailing zeros dropped), since more digits than that only say how the float was
computed. A model is named as its users know it, never by the local path a worker happened to load it from.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath

HUB_CACHE_FOLDER = re.compile(r"models--(?P<owner>[^/]+?)--(?P<name>[^/]+)")
COMMIT = re.compile(r"[0-9a-f]{40}")


def human_number(value: object, digits: int = 3) -> str:
    """``value`` for a person: integers (counts) exact with separators, floats (measurements) to ``digits``
    significant digits; ``—`` for nothing, and anything that is not a number as it is."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value and abs(value) < 1e-4:
        return f"{value:.{digits - 1}e}"
    rounded = float(f"{value:.{digits}g}")
    if rounded.is_integer():
        return f"{int(rounded):,}"
    decimals = digits - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:,.{decimals}f}".rstrip("0").rstrip(".")


def model_label(model: str | None, revision: str | None = None) -> str:
    """``owner/name @ revision`` for a hub model (also when it was loaded from the hub's cache folder), the
    checkpoint's folder name for another local path; a 40-digit commit is shortened to 12 digits."""
    if not model:
        return "—"
    name = model
    if "/" in model and (model.startswith(("/", "./", "../", "~")) or model.count("/") > 1):
        path = PurePosixPath(model)
        cached = HUB_CACHE_FOLDER.search(model)
        if cached:
            name = f"{cached['owner']}/{cached['name']}"
            if not revision and path.parent.name == "snapshots":
                revision = path.name
        elif path.name == "model" and path.parent.name:
            name = path.parent.name  # packaged checkpoints often live in a folder called "model"
        else:
            name = path.name
    if not revision:
        return name
    return f"{name} @ {revision[:12] if COMMIT.fullmatch(revision) else revision}"
