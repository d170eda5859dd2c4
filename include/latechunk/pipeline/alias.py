"""The reindex's alias swap: serve a new index under the alias in one atomic update, between indices this pipeline
built for the alias only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import META_KEY

log = logging.getLogger(__name__)


class ForeignIndexError(Exception):
    """The alias serves, or would serve, an index that this pipeline did not build for it; nothing was changed."""


def swap_alias(*, es, alias: str, new_index: str, delete_old: bool = False) -> dict[str, Any]:
    """Serve ``new_index`` under ``alias`` (atomically), optionally deleting the indices the alias left.

    Only indices this pipeline built for the alias are detached or deleted (`foreign_indices`): anything else is
    refused with `ForeignIndexError` before anything is written.
    """
    backend = ElasticsearchBackend(es)
    foreign = foreign_indices(es, alias, [new_index, *backend.alias_targets(alias)])
    if foreign:
        raise ForeignIndexError(
            f"refusing to point alias {alias!r} at {new_index!r}: "
            + "; ".join(f"{name!r} {why}" for name, why in foreign.items())
            + ". Nothing was changed: move the alias by hand if that index is yours to replace"
        )
    previous = backend.swap_alias(alias, new_index)
    if delete_old:
        for name in previous:
            es.indices.delete(index=name)
    log.info("alias %s -> %s (was %s%s)", alias, new_index, previous or "unset", ", deleted" if delete_old else "")
    return {"alias": alias, "index": new_index, "previous": previous, "deleted_previous": bool(delete_old)}


def foreign_indices(es, alias: str, names: Sequence[str]) -> dict[str, str]:
    """name -> why, for the ``names`` this pipeline did not build for ``alias``. Its indices record their settings
    in ``_meta.latechunk`` and are named ``<alias>-<version>`` (`latechunk.pipeline.index.served_index_name`, and
    the reindex DAG's ``<alias>-<run>``)."""
    mappings = es.indices.get_mapping(index=list(dict.fromkeys(names)))
    foreign = {}
    for name, body in mappings.items():
        if META_KEY not in body["mappings"].get("_meta", {}):
            foreign[name] = f"was not built by latechunk (its mapping has no _meta.{META_KEY})"
        elif not name.startswith(f"{alias}-"):
            foreign[name] = f"was built for another alias (not named {alias}-<version>)"
    return foreign
