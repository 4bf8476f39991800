"""Ancestral sampling through a multi-level VQ-VAE (Jukebox): a top prior, then upsamplers, then a decoder.

A :class:`SamplingChain` holds the VQ-VAE and its stages top-down (none: it only decodes given codes);
each stage is a prior over one level, and an upsampler stage also reads the level above.
:meth:`SamplingChain.sample_codes` returns every sampled level's codes; :meth:`SamplingChain.decode` turns
a level's codes into audio with that level's decoder. Every level draws from its own generator, seeded by
``(seed, level)`` alone, so a chain resumed from saved codes of an upper level (``start`` codes) continues
exactly as the uninterrupted chain did: staged, low-memory sampling gives the same samples bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.models.multilevel import MultiLevelAutoencoder
from audiolvm.models.priors.base import Prior


@dataclass
class ChainStage:
    """One prior of the chain: it models ``level``'s codes, given ``upper_level``'s for an upsampler, and
    conditions on a label from ``labels`` (empty: unconditional)."""

    prior: Prior
    level: int
    upper_level: int | None = None
    labels: Sequence[str] = ()


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def reseeded(self, seed: int) -> SamplingSettings:
        return dataclasses.replace(self, seed=seed)


def top_down(values: Sequence, levels: Sequence[int], what: str) -> dict[int, Any]:
    """``{level: value}`` from a top-down list: one value for every level, or one per level (none: ``{}``)."""
    if len(values) not in (0, 1, len(levels)):
        raise UsageError(f"{what}: give one value or one per sampled level ({len(levels)}, top-down), got "
                         f"{len(values)}")
    return {lv: values[i if len(values) > 1 else 0] for i, lv in enumerate(levels)} if values else {}


def per_level(levels: Sequence[int], temperature: Sequence[float], top_p: Sequence[float | None],
              top_k: int | None = None, seed: int = 0) -> dict[int, SamplingSettings]:
    """``{level: SamplingSettings}`` from top-down lists (one value for every level, or one per level)."""
    temps, tops = top_down(temperature, levels, "temperature"), top_down(top_p, levels, "top_p")
    return {lv: SamplingSettings(temps[lv], top_k, tops[lv], seed) for lv in levels}


DEFAULT_SAMPLING = SamplingSettings()


def level_generator(seed: int, level: int) -> torch.Generator:
    """The generator of one level's draws: a function of ``(seed, level)`` only."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, level]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


class SamplingChain:
    """``model`` (a :class:`MultiLevelAutoencoder` of audio at ``sample_rate``) plus ``stages`` top-down; see the
    module docstring."""

    def __init__(self, model: MultiLevelAutoencoder, stages: Sequence[ChainStage], sample_rate: int) -> None:
        self.model, self.stages, self.sample_rate = model, list(stages), sample_rate
        sampled: set[int] = set()
        own = {st.level for st in self.stages}
        for st in self.stages:
            if not 0 <= st.level < model.num_levels:
                raise UsageError(f"a prior models level {st.level}, the VQ-VAE has levels 0..{model.num_levels - 1}")
            k = model.levels[st.level].bottleneck.num_codes
            if st.prior.num_codes != k:
                raise UsageError(f"the prior for level {st.level} has K={st.prior.num_codes}, the VQ-VAE's level has "
                                 f"K={k}; train it on this model's codes")
            if st.upper_level in own and st.upper_level not in sampled:
                raise UsageError(f"the upsampler for level {st.level} needs level {st.upper_level} sampled before it; "
                                 "list the stages top-down")
            sampled.add(st.level)

    @property
    def levels(self) -> list[int]:
        return [st.level for st in self.stages]

    @property
    def lowest(self) -> int:
        return min(self.levels)

    def length(self, level: int, seconds: float) -> int:
        """Codes of ``level`` in ``seconds`` of audio."""
        return math.ceil(seconds * self.sample_rate / self.model.hops[level])

    def label_cond(self, stage: ChainStage, label: str | None, n: int) -> dict[str, torch.Tensor]:
        if not stage.labels:
            return {}
        label = stage.labels[0] if label is None else label
        if label not in stage.labels:
            raise UnknownNameError(f"label {label!r} is not one of the level-{stage.level} prior's labels: "
                           f"{', '.join(stage.labels)}")
        return {"label": torch.full((n,), list(stage.labels).index(label), dtype=torch.long)}

    def sample_codes(self, n: int, seconds: float, label: str | None = None,
                     settings: SamplingSettings | Mapping[int, SamplingSettings] = DEFAULT_SAMPLING,
                     prime: Mapping[int, torch.Tensor] | None = None,
                     start: Mapping[int, torch.Tensor] | None = None, progress: bool = True) -> dict[int, torch.Tensor]:
        """``{level: LongTensor[n x N_level]}`` for every stage's level.

        ``settings`` apply to every level, or give one per level (``{level: SamplingSettings}``; Jukebox
        samples its upsamplers cooler than its top prior). ``prime[level] : LongTensor[1 or n x P]`` are
        codes to continue (transformer priors; e.g. an encoded prompt). ``start[level]`` are already
        sampled codes (a saved run's): stages of those levels are skipped and the chain resumes below them
        with the same draws it would have made.
        """
        codes: dict[int, torch.Tensor] = {lv: c.long() for lv, c in (start or {}).items()}
        if not self.stages and not codes:
            raise UsageError("SamplingChain: no stages and no start codes; give a top-level prior or saved codes")
        for st in self.stages:
            if st.level in codes:
                if codes[st.level].shape != (n, self.length(st.level, seconds)):
                    raise UsageError(f"start codes of level {st.level} have shape {tuple(codes[st.level].shape)}, "
                                     f"expected {(n, self.length(st.level, seconds))} for n={n}, {seconds} s")
                continue
            cond = self.label_cond(st, label, n)
            if st.upper_level is not None:
                if st.upper_level not in codes:
                    raise UsageError(f"the upsampler for level {st.level} needs level {st.upper_level}'s codes: add "
                                     "that level's prior to the chain or pass its codes as start")
                cond["upper"] = codes[st.upper_level]
            length = self.length(st.level, seconds)
            kwargs: dict = {"progress": progress} if hasattr(st.prior, "forward_step") else {}
            if prime is not None and st.level in prime:
                if not hasattr(st.prior, "forward_step"):
                    raise UsageError(f"{type(st.prior).__name__} cannot continue a prompt; use a transformer prior")
                kwargs["prime"] = prime[st.level][:, :length].expand(n, -1)
            s = settings if isinstance(settings, SamplingSettings) else settings[st.level]
            codes[st.level] = st.prior.sample(n, length, cond or None, s.temperature, s.top_k, s.top_p,
                                              level_generator(s.seed, st.level), **kwargs)
        return codes

    def speaker(self, label: str | None, n: int) -> torch.Tensor | None:
        """Speaker ids for a speaker-conditioned decoder: ``label`` if it names a training speaker, else the
        first one; None for a decoder without speakers."""
        model = self.model
        if model.speaker is None:
            return None
        name = label if label in model.speaker_names else model.speaker_names[0]
        return model.speaker.ids([name] * n)

    def decode(self, codes: Mapping[int, torch.Tensor], level: int | None = None, seconds: float | None = None,
               label: str | None = None) -> torch.Tensor:
        """Audio ``Tensor[n x 1 x T]`` from ``level``'s codes (default: the lowest sampled level)."""
        level = min(codes) if level is None else level
        full: list[torch.Tensor | None] = [codes.get(i) for i in range(self.model.num_levels)]
        n = codes[level].shape[0]
        length = None if seconds is None else int(seconds * self.sample_rate)
        return self.model.decode(full, level=level, length=length, speaker=self.speaker(label, n))
