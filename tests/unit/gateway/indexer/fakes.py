"""An in-memory Elasticsearch for the indexer's handler: the semantics its writes rely on.

Realtime ``versions`` (mget) with each document's seq_no and primary term; bulk ``create``
(409 if the document exists) and ``update`` (partial merge, ``doc_as_upsert``, 409 when
``if_seq_no``/``if_primary_term`` no longer match, 404 when the document is missing), applied
in request order. ``answers`` replaces the next bulk answers; ``before_bulk`` runs between the
read and the write, as a concurrent writer would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from common.tweet_store import Versioned

CONFLICT = {"type": "version_conflict_engine_exception", "reason": "version conflict"}


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeStore:
    def __init__(self, *answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}  # id → (seq_no, source)
        self.seq_no = -1
        self.calls: list[list[dict[str, Any]]] = []  # bulk operations, in call order
        self.reads: list[list[str]] = []  # mget ids, in call order
        self.before_bulk: Callable[[FakeStore], None] | None = None

    def put(self, doc_id: str, source: dict[str, Any]) -> None:
        """A write by someone else (another replica, the API): a new version of the document."""
        current = copy.deepcopy(self.docs[doc_id][1]) if doc_id in self.docs else {}
        merge(current, source)
        self.seq_no += 1
        self.docs[doc_id] = (self.seq_no, current)

    async def versions(self, index: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Versioned]:
        self.reads.append(list(ids))
        found: dict[str, Versioned] = {}
        for doc_id in ids:
            if doc_id in self.docs:
                seq_no, source = self.docs[doc_id]
                picked: dict[str, Any] = {}
                for name in fields:
                    outer, inner = name.split(".")
                    if isinstance(source.get(outer), dict) and inner in source[outer]:
                        picked.setdefault(outer, {})[inner] = source[outer][inner]
                found[doc_id] = Versioned(seq_no, 1, picked)
        return found

    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append(list(operations))
        if self.before_bulk is not None:
            self.before_bulk(self)
        if self.answers:
            return self.answers.pop(0)
        return [self._apply(header, body) for header, body in zip(operations[::2], operations[1::2], strict=True)]

    def _apply(self, header: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        (action, meta), = header.items()  # fmt: skip
        doc_id = meta["_id"]
        exists = doc_id in self.docs
        if action == "create":
            if exists:
                return {action: {"status": 409, "error": CONFLICT}}
            self.put(doc_id, body)
            return {action: {"status": 201}}
        if "if_seq_no" in meta:
            if not exists:
                return {action: {"status": 404, "error": {"type": "document_missing_exception"}}}
            if (self.docs[doc_id][0], 1) != (meta["if_seq_no"], meta["if_primary_term"]):
                return {action: {"status": 409, "error": CONFLICT}}
        elif not exists and not body.get("doc_as_upsert"):
            return {action: {"status": 404, "error": {"type": "document_missing_exception"}}}
        self.put(doc_id, body["doc"])
        return {action: {"status": 200 if exists else 201}}
