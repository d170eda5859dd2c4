"""The run manifest: what the extract stage checked and staged, written once and read by every later stage.

Annotate and embed take the model, its revision, the chunking, the window and the late-chunking settings from it,
not from the run's params again: the settings extract checked against the index are the ones the vectors are
computed with. The file stays the JSON object it always was, so a run staged before this class existed (one in
flight during an upgrade) is read too (`RunManifest.from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.levels import DEFAULT_LEVELS, parse_levels
from latechunk.embedding.config import LateChunkingConfig
from latechunk.staging import tables as staging

MANIFEST = "manifest.json"
# The manifest without its per-object lists, beside it: what the mapped annotate and embed tasks read (the model
# and the settings), so that each of a first load's hundreds of batch tasks does not parse the key of every object.
RUN_SETTINGS = "run-settings.json"
OBJECT_LISTS = ("changed", "unstaged", "deleted_keys", "quarantine", "retried")


@dataclass(frozen=True)
class RunManifest:
    """One run of the extract stage: the index configuration it checked and what it staged.

    ``late_chunking`` is the method in full; the file records only what differs from plain late chunking (as the
    index does, `LateChunkingConfig.recorded`). ``settings`` is the extract stage's settings as given, for the
    record; ``max_bad_fraction`` is the one later stages enforce again.
    """

    bucket: str
    prefix: str
    index: str
    model: str
    model_revision: str
    dims: int
    chunking: ChunkingConfig
    window: int
    window_overlap: int | None
    late_chunking: LateChunkingConfig
    max_bad_fraction: float
    objects_selected: int | None = None
    objects_under_prefix: int | None = None  # listed (all of the prefix; the keys events named)
    objects_quarantined: int = 0
    batches: list[str] = field(default_factory=list)
    batching: dict[str, Any] = field(default_factory=dict)
    # The objects read (not skipped by a race): their count, and key -> ETag of those that gave no document to stage
    # (quarantined by extract, folder markers); the staged documents carry the key and ETag of the others, so the
    # manifest does not grow with the run (`latechunk.pipeline.run_parts`). A manifest staged before the count
    # lists every such object in ``changed`` instead (``changed_count`` None).
    changed_count: int | None = None
    unstaged: dict[str, str] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)
    deleted_keys: list[str] = field(default_factory=list)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    pending_uri: str | None = None
    retried: dict[str, int] = field(default_factory=dict)  # key -> runs it failed in before
    settings: dict[str, Any] = field(default_factory=dict)
    # The levels the run indexes (`latechunk.chunking.levels`); the file records them only when not chunks only.
    levels: tuple[str, ...] = DEFAULT_LEVELS

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file, keyed as manifests always were."""
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "index": self.index,
            "model": self.model,
            "model_revision": self.model_revision,
            "dims": self.dims,
            "chunking": self.chunking.as_dict(),
            "window": self.window,
            "window_overlap": self.window_overlap,
            "late_chunking": self.late_chunking.recorded(),
            "objects_selected": self.objects_selected,
            "objects_under_prefix": self.objects_under_prefix,
            "objects_quarantined": self.objects_quarantined,
            "batches": list(self.batches),
            "batching": self.batching,
            "changed_count": self.changed_count,
            "unstaged": self.unstaged,
            "changed": self.changed,
            "deleted_keys": list(self.deleted_keys),
            "quarantine": list(self.quarantine),
            "pending_uri": self.pending_uri,
            "retried": self.retried,
            "settings": {**self.settings, "max_bad_fraction": self.max_bad_fraction},
            **({"levels": list(self.levels)} if tuple(self.levels) != DEFAULT_LEVELS else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        """A manifest from its JSON object, including those written by earlier versions: a key they lack takes
        the value those runs used (no late-chunking record: plain late chunking; no retry bookkeeping: none)."""
        settings = dict(data.get("settings") or {})
        return cls(
            bucket=data["bucket"],
            prefix=data["prefix"],
            index=data["index"],
            model=data["model"],
            model_revision=data["model_revision"],
            dims=int(data["dims"]),
            chunking=ChunkingConfig(**data["chunking"]),
            window=int(data["window"]),
            window_overlap=data.get("window_overlap"),
            late_chunking=LateChunkingConfig.from_recorded(data.get("late_chunking") or {}),
            max_bad_fraction=float(settings.get("max_bad_fraction", 1.0)),
            objects_selected=data.get("objects_selected"),
            objects_under_prefix=data.get("objects_under_prefix"),
            objects_quarantined=int(data.get("objects_quarantined", 0)),
            batches=list(data.get("batches", [])),
            batching=dict(data.get("batching") or {}),
            changed_count=data.get("changed_count"),
            unstaged=dict(data.get("unstaged") or {}),
            changed=dict(data.get("changed") or {}),
            deleted_keys=list(data.get("deleted_keys", [])),
            quarantine=list(data.get("quarantine", [])),
            pending_uri=data.get("pending_uri"),
            retried=dict(data.get("retried") or {}),
            settings=settings,
            levels=parse_levels(data.get("levels")),
        )

    def write(self, s3, area: staging.StagingArea) -> str:
        """Stage the manifest in the run's folder, and beside it the same without its per-object lists
        (`RUN_SETTINGS`); returns the manifest's URI (the extract task's XCom ``manifest``)."""
        whole = self.to_dict()
        staging.write_json(s3, area, RUN_SETTINGS, {**whole, **{name: type(whole[name])() for name in OBJECT_LISTS}})
        return staging.write_json(s3, area, MANIFEST, whole)


def read_manifest(s3, uri: str, *, object_lists: bool = True) -> RunManifest:
    """The run manifest at ``uri``; without ``object_lists``, its settings only (empty ``changed``,
    ``deleted_keys``, ``quarantine`` and ``retried``), from the smaller file beside it where there is one (a run
    staged by an earlier version has only the manifest)."""
    if not object_lists:
        try:
            return RunManifest.from_dict(staging.read_json(s3, f"{uri.rpartition('/')[0]}/{RUN_SETTINGS}"))
        except s3.exceptions.NoSuchKey:
            pass
    return RunManifest.from_dict(staging.read_json(s3, uri))


def manifest_uri(area: staging.StagingArea) -> str:
    """Where the extract stage of the run of ``area`` stages its manifest."""
    return area.uri(area.key(MANIFEST))
