"""Settings dataclasses built from rendered template values.

Each concern's settings are one frozen dataclass that owns its defaults and its checks (`ChunkingConfig`,
`LateChunkingConfig`, `Limits`, `ValidationSettings`, ...). The Airflow params take their defaults from those
dataclasses, and an operator receives one templated dict per concern: Jinja renders its values as text (and a
cleared form field as nothing), so `from_rendered` turns them back into the field types, once, here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

Settings = TypeVar("Settings")

_NOTHING = (None, "", "None")
# Sample values of the types an annotation may name first (annotations are strings under `annotations`).
_NAMED_TYPES = {"int": 0, "float": 0.0, "str": "", "bool": False}


def from_rendered(cls: type[Settings], values: dict[str, Any] | None) -> Settings:
    """``cls`` from rendered values: each cast to the type its field's annotation names first (``int | None``:
    int; ``"true"``/``"1"`` are true), else to the type of its default; a value that rendered as nothing takes
    the default; a value of any other field (a dict, a list) is passed as given."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values or {}) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting {', '.join(unknown)}")
    typed = {}
    for name, value in (values or {}).items():
        if value in _NOTHING:
            continue
        field = fields[name]
        typed[name] = _cast(value, _NAMED_TYPES.get(str(field.type).split(" |")[0], field.default))
    return cls(**typed)


def _cast(value: Any, default: Any) -> Any:
    if default is dataclasses.MISSING or default is None:
        return value
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1")
    if isinstance(default, int):
        return int(float(value)) if isinstance(value, str) else int(value)
    if isinstance(default, float):
        return float(value)
    return str(value) if isinstance(default, str) else value
