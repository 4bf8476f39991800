"""The discriminators' own scores on held-out audio: a sanity figure for an adversarial run.

A discriminator that has learnt something scores real audio above the model's reconstructions (hinge training
pushes real logits toward +1 and fake ones toward -1). Scores near each other mean either a generator that fools
it or a discriminator that learnt nothing; the gap over training, next to the mel distance, tells which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.eval.evaluate import own_speaker
from audiolvm.models.adversarial import mean_logit
from audiolvm.models.multilevel import MultiLevelAutoencoder


@dataclass
class DiscriminatorScores:
    """Mean logit (over patches and sub-discriminators) per utterance, on the originals and on each level's
    reconstruction, and how often an utterance's original outscores its reconstruction."""

    real: list[float] = field(default_factory=list)
    fake: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        out = {"real": float(np.mean(self.real)) if self.real else float("nan")}
        for label, scores in self.fake.items():
            out[label] = float(np.mean(scores))
            out[f"{label} below real"] = float(np.mean([f < r for f, r in zip(scores, self.real, strict=True)]))
        return out

    def to_markdown(self) -> str:
        s = self.summary()
        rows = [f"| original | {s['real']:.3f} | |"]
        rows += [f"| {label} | {s[label]:.3f} | {s[f'{label} below real']:.2f} |" for label in self.fake]
        return "\n".join(["| audio | mean discriminator logit | share of utterances scored below their original |",
                          "|---|---:|---:|", *rows])


@torch.no_grad()
def discriminator_scores(discriminators: nn.Module, model: MultiLevelAutoencoder, reader: CorpusReader,
                         entries: Sequence[Entry], sample_rate: int, progress: bool = False) -> DiscriminatorScores:
    """Score every held-out utterance and each level's reconstruction of it (its own speaker, its own F0)."""
    model.eval()
    discriminators.eval()
    scores = DiscriminatorScores(fake={f"level {i}": [] for i in range(len(model.levels))})
    for entry, wave in iter_audio(reader, entries, sample_rate, "discriminator scores", progress):
        x = torch.from_numpy(wave)[None, None]
        scores.real.append(float(mean_logit(discriminators(x))))
        recons = model.reconstruct(x, speaker=own_speaker(model, entry.speaker))
        for i, recon in enumerate(recons):
            scores.fake[f"level {i}"].append(float(mean_logit(discriminators(recon))))
    return scores
