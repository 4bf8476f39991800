"""Encode a corpus to per-level codes on disk (:class:`~audiolvm.data.codes.CodeWriter`), for prior training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from audiolvm.core.errors import UsageError
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.data.codes import CodeItem, CodeWriter, LevelInfo
from audiolvm.models.multilevel import MultiLevelAutoencoder


@dataclass
class EncodeSummary:
    """What :func:`encode_corpus` wrote: ``items`` encoded, ``frames[l]`` codes of level ``l`` in all, and the
    reader's count of ``skipped`` unreadable files."""

    out: Path
    items: int
    frames: list[int]
    skipped: int


def encode_corpus(model: MultiLevelAutoencoder, reader: CorpusReader, entries: Sequence[tuple[Entry, str]],
                  out: str | Path, sample_rate: int, shard_frames: int = 4_000_000,
                  extra: Mapping[str, Any] | None = None, progress: bool = True) -> EncodeSummary:
    """Encode every ``(entry, split name)`` of ``entries`` (read at ``sample_rate``) with the discrete ``model``
    into the codes folder ``out``: ``shard_frames`` codes per shard file and level; ``extra`` goes into
    ``meta.json`` (e.g. the checkpoint). Unreadable files are skipped and counted."""
    if not model.discrete:
        raise UsageError("the model has no discrete bottleneck, so there are no codes")
    levels = [LevelInfo(i, lv.hop, lv.bottleneck.num_codes) for i, lv in enumerate(model.levels)]
    splits = {e.path: s for e, s in entries}
    with CodeWriter(out, levels, sample_rate, shard_frames, dict(extra or {})) as writer:
        for entry, wave in iter_audio(reader, [e for e, _ in entries], sample_rate, "encode", progress):
            codes = model.encode(torch.from_numpy(wave)[None, None])  # [(1, N_l)] per level
            item = CodeItem(id=entry.utterance, speaker=entry.speaker, path=entry.path,
                            split=splits[entry.path], samples=len(wave))
            writer.add(item, [c[0].numpy() for c in codes])
    frames = [sum(it.spans[i][2] for it in writer.items) for i in range(len(levels))]
    return EncodeSummary(Path(out), len(writer.items), frames, sum(reader.skipped.values()))
