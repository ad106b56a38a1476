"""Which chunks a search may return: a filter that travels with every retrieval call.

A filter only narrows. It is applied inside each index (a Chroma `where`, and the same test for
any other index), never to a top-k after the fact: post-filtering k results can leave a user with
nothing while better-matching allowed chunks exist, and it leaks how much was hidden.

Chunk metadata the filter reads (written at ingestion, see kb.ingest.pipeline):
- `file_type`: the file's extension without the dot, lower case ("pdf", "docx");
- `folders`: every folder above the file inside the ingested root, e.g. "hr/pay/2024.xlsx"
  carries [".", "hr", "hr/pay"] ("." is the ingested root itself);
- `source`: the file's path relative to the ingested root;
- `groups`: the groups allowed to read the chunk's file (kb.access), always at least one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

ROOT_FOLDER = "."
# Metadata schema of the chunks a collection holds; collections written before the filter fields
# existed are upgraded by the next ingestion (kb.store.Store.upgrade).
SCHEMA_VERSION = 3


def folders_of(source: str) -> list[str]:
    """The folders above `source` (a relative, '/'-separated path), the root "." first."""
    parents = list(PurePosixPath(source).parents)[:-1]  # without "."
    return [ROOT_FOLDER, *(p.as_posix() for p in reversed(parents))]


def file_type_of(source: str) -> str:
    return PurePosixPath(source).suffix.lower().lstrip(".")


def filter_metadata(source: str) -> dict[str, Any]:
    """The metadata fields a filter reads, for a chunk of the file at `source`."""
    return {"file_type": file_type_of(source), "folders": folders_of(source)}


def _normal_folder(folder: str) -> str:
    cleaned = PurePosixPath(folder.replace("\\", "/").strip("/")).as_posix()
    return cleaned or ROOT_FOLDER


@dataclass(frozen=True)
class SearchFilter:
    """Chunks under any of `folders`, of any of `file_types`, from any of `sources`.

    An empty field does not restrict; every non-empty field must match. `groups` is who reads:
    None does not restrict, a tuple allows the chunks readable by any of those groups (see
    kb.access.Principal.readable); the facade sets it from the principal, not the caller.
    """

    folders: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    groups: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        folders: Iterable[str] = (),
        file_types: Iterable[str] = (),
        sources: Iterable[str] = (),
    ) -> SearchFilter:
        """A filter from loosely written values ("/hr/", ".PDF")."""
        return cls(
            folders=tuple(dict.fromkeys(_normal_folder(f) for f in folders if f.strip())),
            file_types=tuple(dict.fromkeys(t.lower().lstrip(".") for t in file_types if t.strip())),
            sources=tuple(dict.fromkeys(s for s in sources if s)),
        )

    @property
    def is_empty(self) -> bool:
        return not (self.folders or self.file_types or self.sources) and self.groups is None

    def narrowed(self, other: SearchFilter | None) -> SearchFilter:
        """Both filters at once. Two non-empty values of one field keep only what both allow."""
        if other is None or other.is_empty:
            return self
        if self.is_empty:
            return other

        def both(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            if not a or not b:
                return a or b
            kept = tuple(x for x in a if x in b)
            # Nothing in common must match nothing, not everything.
            return kept or ("\0nothing",)

        if self.groups is None or other.groups is None:
            groups = self.groups if other.groups is None else other.groups
        else:
            # Only the groups both allow: never more than either (a chunk readable by one
            # group of each but by none of both is left out, which errs on the safe side).
            groups = tuple(g for g in self.groups if g in other.groups)
        return SearchFilter(
            folders=both(self.folders, other.folders),
            file_types=both(self.file_types, other.file_types),
            sources=both(self.sources, other.sources),
            groups=groups,
        )

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """The same test as `chroma_where`, for indexes that filter in Python."""
        if self.file_types and metadata.get("file_type") not in self.file_types:
            return False
        if self.sources and metadata.get("source") not in self.sources:
            return False
        if self.groups is not None:
            groups = metadata.get("groups") or ()
            if not any(g in groups for g in self.groups):
                return False
        if self.folders:
            folders = metadata.get("folders") or ()
            return any(f in folders for f in self.folders)
        return True

    def chroma_where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.file_types:
            clauses.append({"file_type": {"$in": list(self.file_types)}})
        if self.sources:
            clauses.append({"source": {"$in": list(self.sources)}})
        if self.folders:
            options = [{"folders": {"$contains": f}} for f in self.folders]
            clauses.append(options[0] if len(options) == 1 else {"$or": options})
        if self.groups is not None:
            # No group at all must match nothing: a group name no chunk can carry.
            readers = [{"groups": {"$contains": g}} for g in self.groups or ("\0nobody",)]
            clauses.append(readers[0] if len(readers) == 1 else {"$or": readers})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}
