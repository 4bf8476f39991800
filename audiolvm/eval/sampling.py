"""Ancestral sampling in one call: a :class:`~audiolvm.models.chain.SamplingChain`'s codes and their audio.

:func:`sample_chain` draws every stage's codes (optionally continuing a prompt, or resuming below saved upper-level
codes) and decodes the lowest level. :func:`resolve_settings` merges per-level settings given now with those a
saved run was drawn with. :func:`write_saved_codes` / :func:`read_saved_codes` keep sampled codes between runs:
``level<L>.npy`` (int32 ``[n x N_L]``) per level and ``codes.json`` (the run's settings and ``levels``). Because
every level draws from its own generator seeded by ``(seed, level)``, resuming from saved codes gives the straight
run's samples bit for bit.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_bytes, atomic_write_json, read_json
from audiolvm.models.chain import DEFAULT_SAMPLING, SamplingChain, SamplingSettings

CODES_META = "codes.json"


@dataclass
class ChainSamples:
    """``codes``: ``{level: LongTensor[n x N_level]}``, every sampled level and the start codes; ``audio``:
    ``Tensor[n x 1 x T]``, ``level``'s codes decoded (the lowest level)."""

    codes: dict[int, torch.Tensor]
    audio: torch.Tensor
    level: int


def sample_chain(chain: SamplingChain, n: int, seconds: float, label: str | None = None,
                 settings: SamplingSettings | Mapping[int, SamplingSettings] = DEFAULT_SAMPLING,
                 prime: torch.Tensor | None = None, start: Mapping[int, torch.Tensor] | None = None,
                 progress: bool = True) -> ChainSamples:
    """``n`` samples of ``seconds`` each from ``chain``, conditioned on ``label`` (a speaker / track group).

    ``settings``: for every level, or ``{level: SamplingSettings}``. ``prime : Tensor[1 x 1 x T]``: audio at the
    chain's rate whose codes every sample continues (transformer priors). ``start``: saved codes of upper levels;
    their stages are skipped (:meth:`SamplingChain.sample_codes`). An unknown ``label`` is a KeyError.
    """
    prime_codes = None if prime is None else dict(enumerate(chain.model.encode(prime)))  # {level: (1, N_l)}
    codes = chain.sample_codes(n, seconds, label, settings, prime_codes, start or {}, progress=progress)
    lowest = min(codes)
    return ChainSamples(codes, chain.decode(codes, lowest, seconds, label), lowest)  # audio (n, 1, T)


def resolve_settings(levels: Sequence[int], saved: Mapping[str, Mapping[str, Any]] | None = None, *,
                     temperature: Mapping[int, float] | None = None, top_p: Mapping[int, float | None] | None = None,
                     top_k: int | None = None, seed: int | None = None) -> dict[int, SamplingSettings]:
    """Each of ``levels``' settings: the value given here (``{level: value}`` for temperature and top-p; None or
    a missing level: not given), else the one in ``saved`` (``codes.json``'s ``settings``: ``{"level": {field:
    value}}``), else the default."""
    known = {int(lv): SamplingSettings(**v) for lv, v in (saved or {}).items()}
    temps, tops = temperature or {}, top_p or {}
    out = {}
    for lv in levels:
        base = known.get(lv, SamplingSettings())
        out[lv] = SamplingSettings(temps.get(lv, base.temperature), top_k if top_k is not None else base.top_k,
                                   tops.get(lv, base.top_p), seed if seed is not None else base.seed)
    return out


def write_saved_codes(folder: str | Path, codes: Mapping[int, torch.Tensor],
                      settings: Mapping[int, SamplingSettings], meta: Mapping[str, Any]) -> None:
    """``level<L>.npy`` (int32) per level of ``codes`` and ``codes.json``: ``meta``, its ``settings`` (those of
    earlier runs, ``{"level": {field: value}}``) updated with ``settings`` (the levels sampled now), ``levels``."""
    folder = Path(folder)
    for lv, c in codes.items():
        buf = io.BytesIO()
        np.save(buf, c.numpy().astype(np.int32))
        atomic_write_bytes(folder / f"level{lv}.npy", buf.getvalue())
    drawn = dict(meta.get("settings", {})) | {str(lv): dataclasses.asdict(v) for lv, v in settings.items()}
    atomic_write_json(folder / CODES_META, dict(meta) | {"settings": drawn, "levels": sorted(codes)})


def read_saved_codes(folder: str | Path, level: int | None = None) -> tuple[dict, dict[int, torch.Tensor]]:
    """``(meta, {level: LongTensor[n x N_level]})`` of a :func:`write_saved_codes` folder, levels >= ``level``
    only (default: every saved level)."""
    folder = Path(folder)
    meta_path = folder / CODES_META
    if not meta_path.is_file():
        raise MissingFileError(f"{folder}: no {CODES_META}, so these are no saved sample codes; write them with "
                                "'audiolvm sample --save-codes --out DIR' and pass DIR/codes")
    meta = read_json(meta_path, "write the codes again with 'audiolvm sample --save-codes'")
    saved = sorted(int(lv) for lv in meta["levels"])
    level = saved[0] if level is None else level
    if level not in saved:
        raise UsageError(f"level {level}: {folder} holds levels {saved}; resume from one of them")
    codes = {lv: torch.from_numpy(np.load(folder / f"level{lv}.npy", allow_pickle=False).astype(np.int64))
             for lv in saved if lv >= level}
    return meta, codes
