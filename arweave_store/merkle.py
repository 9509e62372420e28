"""Arweave v2 data roots and chunk proofs, computed from a file on disk.

This follows arweave-js (``common/lib/merkle.ts``) exactly, including how the
last two chunks are balanced so that no chunk but the last is under 32 KiB;
a gateway rejects chunks whose proofs were built any other way. Only hashes are
kept in memory, so a 100 MB file costs a few kilobytes here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from arweave_store.encoding import note

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


@dataclass(frozen=True)
class Chunk:
    start: int  # minByteRange
    end: int  # maxByteRange
    data_hash: bytes


@dataclass(frozen=True)
class Proof:
    offset: int  # end - 1, as the /chunk endpoint wants it
    path: bytes  # data_path


@dataclass(frozen=True)
class ChunkPlan:
    data_root: bytes
    size: int
    chunks: tuple[Chunk, ...]
    proofs: tuple[Proof, ...]


@dataclass
class _Node:
    id: bytes
    max_byte_range: int
    data_hash: bytes | None = None  # leaves only
    byte_range: int = 0  # branches only: the left child's end
    left: _Node | None = None
    right: _Node | None = None


def chunk_ranges(size: int) -> list[tuple[int, int]]:
    """The byte ranges arweave-js cuts ``size`` bytes into (the last one may be empty)."""
    ranges = []
    cursor, rest = 0, size
    while rest >= MAX_CHUNK_SIZE:
        length = MAX_CHUNK_SIZE
        following = rest - MAX_CHUNK_SIZE
        if 0 < following < MIN_CHUNK_SIZE:
            length = -(-rest // 2)  # split the tail in two instead of leaving a runt
        ranges.append((cursor, cursor + length))
        cursor += length
        rest -= length
    ranges.append((cursor, cursor + rest))
    return ranges


def read_ranges(path: Path, ranges: list[tuple[int, int]]) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        for start, end in ranges:
            fh.seek(start)
            yield fh.read(end - start)


def _branch(left: _Node, right: _Node | None) -> _Node:
    if right is None:
        return left
    return _Node(id=_sha256(_sha256(left.id), _sha256(right.id), _sha256(note(left.max_byte_range))),
                 max_byte_range=right.max_byte_range, byte_range=left.max_byte_range, left=left, right=right)


def _proofs(node: _Node, prefix: bytes = b"") -> Iterator[Proof]:
    if node.data_hash is not None:
        yield Proof(node.max_byte_range - 1, prefix + node.data_hash + note(node.max_byte_range))
        return
    assert node.left is not None and node.right is not None
    partial = prefix + node.left.id + node.right.id + note(node.byte_range)
    yield from _proofs(node.left, partial)
    yield from _proofs(node.right, partial)


def plan_chunks(path: Path, size: int) -> ChunkPlan:
    """Chunks, data root and proofs for the ``size`` bytes at ``path``."""
    if size <= 0:
        raise ValueError("Arweave data roots need at least one byte")
    ranges = chunk_ranges(size)
    chunks = tuple(Chunk(start, end, hashlib.sha256(data).digest())
                   for (start, end), data in zip(ranges, read_ranges(path, ranges), strict=True))
    layer = [_Node(id=_sha256(_sha256(c.data_hash), _sha256(note(c.end))), max_byte_range=c.end, data_hash=c.data_hash)
             for c in chunks]
    while len(layer) > 1:
        layer = [_branch(layer[i], layer[i + 1] if i + 1 < len(layer) else None) for i in range(0, len(layer), 2)]
    proofs = tuple(_proofs(layer[0]))
    if chunks[-1].end == chunks[-1].start:  # arweave-js drops an empty tail after building the tree
        chunks, proofs = chunks[:-1], proofs[:-1]
    return ChunkPlan(data_root=layer[0].id, size=size, chunks=chunks, proofs=proofs)
