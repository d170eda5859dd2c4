"""A run's objects in parts of a few batches: what the index and validate tasks hold in memory at once.

A first load of a million objects stages a hundred batches. The index and validate tasks go through the run one
part at a time, each part a `RunManifest` of its own: its batches, ``changed`` filled with the key and ETag of its
staged documents' objects, and nothing else. The objects extract read but staged no document of (``unstaged``),
the deleted keys, extract's quarantine and the keys retried but not staged make one last part without batches. So a
task holds one part's objects, never the run's (`latechunk.pipeline.index`).

Parts never split an object: the documents of an object come in a row, and when a batch ends within an object, the
next batch joins its part. A manifest staged before ``changed_count`` existed lists every changed object itself and
is one part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from latechunk.pipeline.index_plan import UnaccountedObjects
from latechunk.pipeline.manifest import RunManifest
from latechunk.staging import tables as staging


def run_parts(s3, manifest: RunManifest) -> Iterator[RunManifest]:
    """The run in parts (see the module docstring), the batches' parts in the manifest's order, then the last."""
    if manifest.changed_count is None:
        yield manifest
        return
    batches: list[str] = []
    changed: dict[str, str] = {}
    retried_staged: set[str] = set()
    last_key = None
    for uri in manifest.batches:
        etags = staging.read_object_etags(s3, uri)
        if batches and next(iter(etags), None) != last_key:
            yield _part(manifest, batches, changed, retried_staged)
            batches, changed = [], {}
        batches.append(uri)
        changed.update(etags)
        last_key = next(reversed(etags), last_key)
    if batches:
        yield _part(manifest, batches, changed, retried_staged)
    retried = {key: runs for key, runs in manifest.retried.items() if key not in retried_staged}
    yield replace(manifest, batches=[], changed=dict(manifest.unstaged), unstaged={}, retried=retried,
                  objects_selected=None, changed_count=None)  # fmt: skip


def _part(manifest: RunManifest, batches: list[str], changed: dict[str, str], retried_staged: set[str]) -> RunManifest:
    retried = {key: manifest.retried[key] for key in changed if key in manifest.retried}
    retried_staged.update(retried)
    return replace(
        manifest, batches=batches, changed=changed, unstaged={}, deleted_keys=[], quarantine=[], retried=retried,
        objects_selected=None, changed_count=None,
    )  # fmt: skip


def objects_read(manifest: RunManifest) -> int:
    """How many objects the run's extract read to write (staged, or quarantined in ``unstaged``)."""
    return len(manifest.changed) if manifest.changed_count is None else manifest.changed_count


def check_parts_add_up(manifest: RunManifest, objects_in_parts: int) -> None:
    """Raise `UnaccountedObjects` when the parts' objects are not the ones extract counted as read: documents were
    lost between the stages, or staged for objects extract did not read."""
    expected = objects_read(manifest)
    if objects_in_parts != expected:
        raise UnaccountedObjects(
            f"extract read {expected} objects to index, but the staged batches and its quarantine hold "
            f"{objects_in_parts}: documents were lost between the stages, or staged for an object extract did not "
            "read"
        )
