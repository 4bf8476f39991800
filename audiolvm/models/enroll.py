"""Few-shot speaker enrolment: a new voice for a trained speaker-conditioned model, without retraining it.

:func:`enroll_speaker` fits one speaker vector ``Tensor[dim]`` so that the frozen decoder, reading the clips' own
codes (and F0), reconstructs the clips; every weight stays as it is. The codes, F0 and crops are computed once, so
each step is one decoder forward and backward on a batch of crops. With a speaker encoder the vector starts at
the encoder's mean vector of the clips, otherwise at the mean of the table. A pitch-aware model also gets the
speaker's ln-F0 ``[mean, std]`` from the clips, which ``convert --pitch map`` moves a source contour into.

:meth:`MultiLevelAutoencoder.add_speaker` then makes the voice one more speaker of the model (``audiolvm enroll``
writes that model as a new run folder).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from audiolvm.core.errors import UsageError
from audiolvm.models.multilevel import MultiLevelAutoencoder
from audiolvm.models.pitch import Pitch, voiced_log_stats
from audiolvm.nn.mode import frozen


@dataclass
class Enrolment:
    """The fitted ``vector : Tensor[dim]``, the speaker's ln-F0 ``[mean, std]`` (None without a pitch path), and
    the fit's record: steps, seconds, the loss over all crops before and after, crops and samples of the clips."""

    vector: torch.Tensor
    f0_stats: list[float] | None
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    crops: int
    samples: int

    def summary(self, sample_rate: int) -> dict:
        """The fit's record for JSON and tables (``f0_stats`` included, the vector left out)."""
        return {"seconds_of_audio": round(self.samples / sample_rate, 2), "crops": self.crops, "steps": self.steps,
                "fit_seconds": round(self.seconds, 1), "loss_first": self.first_loss, "loss_last": self.last_loss,
                "f0_stats": self.f0_stats}


def _windows(clips: Sequence[torch.Tensor], crop: int, hop: int) -> list[tuple[int, int]]:
    """``(clip index, start sample)`` of crops of every clip, starting at multiples of ``hop``, half a crop apart."""
    step = max(hop, (crop // 2) // hop * hop)
    return [(i, start) for i, clip in enumerate(clips) for start in range(0, max(clip.numel() - crop, 0) + 1, step)]


def _window_pitch(tracks: Sequence[Pitch], windows: Sequence[tuple[int, int]], crop: int, hop: int) -> Pitch:
    """The F0 frames of each window, sliced from its clip's track (``crop // hop + 1`` frames, as extracting the
    window alone would give), so each clip's F0 is extracted once."""
    n = crop // hop + 1
    f0 = torch.stack([tracks[i].f0[0, s // hop: s // hop + n] for i, s in windows])
    voiced = torch.stack([tracks[i].voiced[0, s // hop: s // hop + n] for i, s in windows])
    return Pitch(f0, voiced)


def enroll_speaker(model: MultiLevelAutoencoder, clips: Sequence[torch.Tensor],
                   loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], level: int = 0, steps: int = 300,
                   lr: float = 0.05, crop: int = 8000, batch: int = 8, seed: int = 0,
                   time_limit: float | None = None) -> Enrolment:
    """Fit a speaker vector for ``clips`` (waveforms ``Tensor[T]`` at the model's rate) on level ``level``'s decoder.

    ``loss(recon, audio)`` scores a reconstruction ``Tensor[B x 1 x crop]`` (the run's own reconstruction terms).
    Adam runs ``steps`` steps (or until ``time_limit`` seconds) on random batches of ``batch`` crops of ``crop``
    samples (shorter clips: the shortest clip's length, in whole codes), its rate decaying from ``lr`` to 0 on a
    cosine over that budget. ``first_loss`` / ``last_loss`` are the loss over all crops before and after. The model
    is left in the mode and with the gradient flags it had, and no weight or buffer of it changes.
    """
    if model.speaker is None or level not in model.speaker_levels:
        raise UsageError(f"level {level}'s decoder is not speaker-conditioned (levels {model.speaker_levels}): "
                         "enrolment fits the vector such a decoder reads")
    if not clips:
        raise UsageError("enrolment needs at least one clip of the new speaker")
    hop = model.levels[level].hop
    crop = min(crop, min(c.numel() for c in clips)) // hop * hop
    if crop < hop:
        raise UsageError(f"the clips are too short: the shortest has {min(c.numel() for c in clips)} samples, "
                         f"under one code ({hop} samples)")
    with frozen(model):
        with torch.no_grad():
            waves = [c.reshape(-1) for c in clips]
            windows = _windows(waves, crop, hop)
            audio = torch.stack([waves[i][s: s + crop] for i, s in windows])[:, None]  # (W, 1, crop)
            z = model.level_features(audio, level)[1]  # (W, D, N)
            upper = None
            if model.mode == "conditioned" and level + 1 < model.num_levels:
                upper = model.level_features(audio, level + 1)[1]
            pitch = f0_stats = None
            if level in model.pitch_levels:
                assert model.pitch is not None  # a pitch level implies a pitch path (MultiLevelAutoencoder.__init__)
                tracks = [model.pitch.extract(w[None, None]) for w in waves]  # one extraction per clip (extract_pitch)
                pitch = _window_pitch(tracks, windows, crop, model.pitch.settings.hop)
                whole = Pitch(torch.cat([t.f0 for t in tracks], -1), torch.cat([t.voiced for t in tracks], -1))
                f0_stats = voiced_log_stats(whole, model.pitch.global_stats)[0].tolist()
            if model.speaker.encoder is not None:
                start = torch.stack([model.speaker(c.reshape(1, 1, -1))[0] for c in clips]).mean(0)
            else:
                start = model.speaker.table.weight.mean(0)
        vector = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([vector], lr=lr)
        gen = torch.Generator().manual_seed(seed)

        def decode(idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            p = None if pitch is None else Pitch(pitch.f0[idx], pitch.voiced[idx])
            return model.decode_latents(level, z[idx], None if upper is None else upper[idx],
                                        v[None].expand(len(idx), -1), p)[..., :crop]

        def pool_loss(v: torch.Tensor) -> float:  # the loss over every crop, in batches
            with torch.no_grad():
                chunks = torch.arange(audio.shape[0]).split(batch)
                return sum(float(loss(decode(i, v), audio[i])) * len(i) for i in chunks) / audio.shape[0]

        first = pool_loss(vector.detach())
        t0, done = time.perf_counter(), 0
        while done < steps:
            # cosine decay of the rate over the budget (steps or time, whichever runs out first)
            progress = max(done / steps, (time.perf_counter() - t0) / time_limit if time_limit else 0.0)
            if progress >= 1.0:
                break
            opt.param_groups[0]["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * progress))
            idx = torch.randint(audio.shape[0], (min(batch, audio.shape[0]),), generator=gen)
            value = loss(decode(idx, vector), audio[idx])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            done += 1
        return Enrolment(vector=vector.detach(), f0_stats=f0_stats, steps=done, seconds=time.perf_counter() - t0,
                         first_loss=first, last_loss=pool_loss(vector.detach()), crops=int(audio.shape[0]),
                         samples=sum(c.numel() for c in clips))
