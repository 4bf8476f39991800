"""Measures that tell music from noise, for a set of clips against held-out real clips.

Per clip (pooled over the non-silent frames of a set):

* **chroma concentration**: the energy share of the 3 strongest pitch classes in each frame's chroma
  (librosa ``chroma_stft``, 4096-point frames); white noise sits near 0.29, a chord near 0.6 and above;
* **spectral flatness**: geometric over arithmetic mean of each frame's power spectrum (librosa); 0 for a
  pure tone, about 0.56 for white noise;
* **onset rate**: detected note onsets per second (librosa's spectral-flux onset detector).

Per set, against a reference set (the held-out originals):

* **log-mel Fréchet distance**: the Fréchet distance between Gaussians fitted to the two sets' 64-band
  log-mel frames (dB), the statistic behind FID / FAD on hand-made features;
* **embedding Fréchet distance** (FAD-style): the same on frames of an encoder's continuous features, here
  the project's own VQ-VAE encoder before quantisation (no downloaded weights).

:class:`MusicReport` collects rows (originals, reconstructions, noise, samples) into one table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import torch

from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_json
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.models.chain import DEFAULT_SAMPLING, SamplingChain, SamplingSettings
from audiolvm.models.multilevel import MultiLevelAutoencoder

#: an embedding of a waveform as frames: ``float[T] -> float[N x D]``
Embedding = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MusicSettings:
    """Analysis settings of the music measures (fixed, so figures are comparable across runs)."""

    chroma_fft: int = 4096  # long frames: pitch classes resolved down to the bass register at 16 kHz
    chroma_hop: int = 1024
    top: int = 3  # pitch classes counted by the concentration
    mel_fft: int = 1024
    mel_hop: int = 256
    n_mels: int = 64
    silence_db: float = 40.0  # frames this far below the clip's loudest frame are left out


DEFAULT_SETTINGS = MusicSettings()


def _active(power: np.ndarray, silence_db: float) -> np.ndarray:
    """Bool[N]: frames whose energy (``power : float[F x N]``) is within ``silence_db`` of the loudest."""
    energy = power.sum(0)
    if not energy.size or energy.max() <= 0:
        return np.zeros(energy.shape, dtype=bool)
    return energy >= energy.max() * 10 ** (-silence_db / 10)


def _power(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    return np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop)) ** 2  # (F, N)


def _chroma(wave: np.ndarray, rate: int, s: MusicSettings) -> np.ndarray:
    """float[12 x N']: chroma energy of the non-silent ``s.chroma_fft``-point frames."""
    power = _power(wave, s.chroma_fft, s.chroma_hop)
    return librosa.feature.chroma_stft(S=power[:, _active(power, s.silence_db)], sr=rate, n_fft=s.chroma_fft,
                                       norm=None)


def chroma_shares(wave: np.ndarray, rate: int, s: MusicSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """float[N]: per non-silent frame, the share of chroma energy in the ``s.top`` strongest pitch classes."""
    chroma = _chroma(wave, rate, s)  # (12, N')
    total = chroma.sum(0)
    ok = total > 0
    return np.sort(chroma[:, ok], axis=0)[-s.top :].sum(0) / total[ok]


def mean_chroma(wave: np.ndarray, rate: int, s: MusicSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """float[12]: the clip's chroma averaged over its non-silent frames, unit sum: its key profile."""
    chroma = _chroma(wave, rate, s).sum(1)  # (12,)
    return chroma / max(float(chroma.sum()), 1e-12)


def key_agreement(prompts: Sequence[np.ndarray], continuations: Sequence[np.ndarray], rate: int,
                  groups: Sequence[Hashable] | None = None, s: MusicSettings = DEFAULT_SETTINGS) -> dict[str, float]:
    """Do continuations keep their prompt's key? The Pearson correlation of the mean chroma of each prompt
    with its own continuation, against the mean over the (prompt, continuation) pairs of different
    ``groups`` (e.g. tracks, when several prompts come from one track; default: every other pair)."""
    if len(prompts) != len(continuations) or len(prompts) < 2:
        raise UsageError("key_agreement needs at least two (prompt, continuation) pairs")
    group_of: Sequence[object] = list(range(len(prompts))) if groups is None else list(groups)
    a = [mean_chroma(w, rate, s) for w in prompts]
    b = [mean_chroma(w, rate, s) for w in continuations]
    corr = np.array([[float(np.corrcoef(x, y)[0, 1]) for y in b] for x in a])  # (P, P)
    other = np.array([[ga != gb for gb in group_of] for ga in group_of])
    if not other.any():
        raise UsageError("key_agreement: every pair is from the same group; give prompts from two tracks or more")
    return {"own": float(np.diag(corr).mean()), "other": float(corr[other].mean()), "pairs": len(a)}


def _mel_and_flatness(wave: np.ndarray, rate: int, s: MusicSettings) -> tuple[np.ndarray, np.ndarray]:
    """One ``s.mel_fft``-point STFT for both: the log-mel frames (:func:`log_mel_frames`) and the flatness of
    the non-silent frames (:func:`flatness_frames`)."""
    power = _power(wave, s.mel_fft, s.mel_hop)  # (F, N)
    keep = _active(power, s.silence_db)
    flat = librosa.feature.spectral_flatness(S=power[:, keep], power=1.0)[0] if keep.any() else np.zeros(0)
    mel = librosa.feature.melspectrogram(S=power, sr=rate, n_fft=s.mel_fft, n_mels=s.n_mels)  # (n_mels, N)
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).T.astype(np.float64), flat


def flatness_frames(wave: np.ndarray, rate: int, s: MusicSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """float[N]: spectral flatness of each non-silent frame (``s.mel_fft``-point power spectra)."""
    return _mel_and_flatness(wave, rate, s)[1]


def onset_rate(wave: np.ndarray, rate: int, s: MusicSettings = DEFAULT_SETTINGS) -> float:
    """Detected onsets per second of ``wave``."""
    if len(wave) < s.mel_fft or not np.any(wave):
        return 0.0
    onsets = librosa.onset.onset_detect(y=wave, sr=rate, hop_length=s.mel_hop, units="frames")
    return len(onsets) / (len(wave) / rate)


def log_mel_frames(wave: np.ndarray, rate: int, s: MusicSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """float64[N x n_mels]: 64-band log-mel frames in dB (power, floor 1e-10)."""
    return _mel_and_flatness(wave, rate, s)[0]


@dataclass
class FrameStats:
    """Mean ``float64[D]`` and covariance ``float64[D x D]`` of a set of frames (a Gaussian fit)."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    @classmethod
    def of(cls, frames: Sequence[np.ndarray] | np.ndarray) -> FrameStats:
        x = np.concatenate(list(frames)) if not isinstance(frames, np.ndarray) else frames
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise UsageError(f"FrameStats needs frames float[N x D] with N >= 2, got shape {x.shape}")
        return cls(x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), len(x))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: FrameStats, b: FrameStats) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, the Fréchet (2-Wasserstein)
    distance between the two Gaussians; exactly 0 for equal statistics up to float64 rounding."""
    if a.mean.shape != b.mean.shape:
        raise UsageError(f"frechet_distance: frame dimensions differ ({a.mean.shape[0]} vs {b.mean.shape[0]})")
    root = _sqrt_psd(a.cov)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ b.cov @ root), 0, None)).sum()
    value = float(((a.mean - b.mean) ** 2).sum() + np.trace(a.cov) + np.trace(b.cov) - 2 * cross)
    return max(value, 0.0)


def encoder_embedding(model: MultiLevelAutoencoder, level: int) -> Embedding:
    """Frames of a VQ-VAE level's encoder output before quantisation (``MultiLevelAutoencoder.level_features``),
    ``float[T] -> float[N x D]``: the project's own FAD-style embedding."""

    def embed(wave: np.ndarray) -> np.ndarray:
        pre, _, _ = model.level_features(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None, None], level)
        return pre[0].T.double().numpy()  # (N, D)

    return embed


def white_noise(like: Sequence[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Gaussian white noise with each clip's length and RMS: the measures' noise anchor."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(len(w)) * float(np.sqrt(np.mean(np.square(w))) or 0.1)).astype(np.float32)
            for w in like]


@dataclass
class MusicRow:
    name: str
    clips: int
    seconds: float
    chroma: float
    flatness: float
    onsets_per_s: float
    mel_fd: float
    embed_fd: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class MusicReport:
    """Rows of music measures for sets of clips, each against the same reference set.

    ``reference`` are the real held-out clips (their own row has Fréchet distances 0), ``labels`` their
    track groups; ``embed`` is an optional frame embedding (:func:`encoder_embedding`) for the FAD-style
    column.
    """

    COLUMNS = ("chroma top-3 share", "spectral flatness", "onsets / s", "log-mel FD", "encoder FD")

    def __init__(self, reference: Sequence[np.ndarray], rate: int, embed: Embedding | None = None,
                 settings: MusicSettings = DEFAULT_SETTINGS, labels: Sequence[str] = ()) -> None:
        if not reference:
            raise UsageError("MusicReport: the reference set is empty; pass held-out real clips")
        self.rate, self.embed, self.settings = rate, embed, settings
        self.reference = [np.asarray(w, dtype=np.float32).reshape(-1) for w in reference]
        self.labels = list(labels)  # the reference clips' labels (track group), if known
        self.rows: list[MusicRow] = []
        self.ref_mel = FrameStats.of([log_mel_frames(w, rate, settings) for w in reference])
        self.ref_embed = FrameStats.of([embed(w) for w in reference]) if embed is not None else None

    def measure(self, name: str, waves: Sequence[np.ndarray]) -> MusicRow:
        """Measure one set of clips (float[T] each, at the report's rate) without adding it."""
        if not waves:
            raise UsageError(f"MusicReport: set {name!r} has no clips")
        s, rate = self.settings, self.rate
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        chroma = np.concatenate([chroma_shares(w, rate, s) for w in waves])
        mels, flats = zip(*(_mel_and_flatness(w, rate, s) for w in waves), strict=True)
        flat = np.concatenate(flats)
        seconds = sum(len(w) for w in waves) / rate
        onsets = sum(onset_rate(w, rate, s) * len(w) / rate for w in waves) / seconds
        mel_fd = frechet_distance(FrameStats.of(mels), self.ref_mel)
        embed_fd = None
        if self.embed is not None and self.ref_embed is not None:
            embed_fd = frechet_distance(FrameStats.of([self.embed(w) for w in waves]), self.ref_embed)
        return MusicRow(name, len(waves), seconds, float(chroma.mean()) if chroma.size else math.nan,
                        float(flat.mean()) if flat.size else math.nan, onsets, mel_fd, embed_fd)

    def add(self, name: str, waves: Sequence[np.ndarray]) -> MusicRow:
        row = self.measure(name, waves)
        self.rows.append(row)
        return row

    def as_dicts(self) -> list[dict]:
        return [r.as_dict() for r in self.rows]

    def to_table(self) -> str:
        head = "| audio | clips | s | " + " | ".join(self.COLUMNS) + " |"
        lines = [head, "|---|---:|---:|" + "---:|" * len(self.COLUMNS)]
        for r in self.rows:
            emb = "–" if r.embed_fd is None else f"{r.embed_fd:,.1f}"
            lines.append(f"| {r.name} | {r.clips} | {r.seconds:.0f} | {r.chroma:.3f} | {r.flatness:.4f} | "
                         f"{r.onsets_per_s:.2f} | {r.mel_fd:,.0f} | {emb} |")
        return "\n".join(lines)

    def write_json(self, path: str, extra: Mapping | None = None) -> None:
        atomic_write_json(path, {"settings": dict(self.settings.__dict__), "rows": self.as_dicts(), **(extra or {})})


@torch.no_grad()
def music_report(model: MultiLevelAutoencoder, reader: CorpusReader, entries: Sequence[Entry], rate: int,
                 levels: Sequence[int] = (), embed_level: int | None = None, progress: bool = True,
                 others: Sequence[Entry] = ()) -> MusicReport:
    """A :class:`MusicReport` against held-out real clips (``entries``), with its anchor rows: the originals
    themselves, their reconstructions at each of ``levels``, other real tracks (``others``, e.g. training
    tracks of the same ensembles: what real music that is not the reference scores) and white noise of the
    same length and loudness. The FAD-style column embeds with ``model``'s encoder at ``embed_level``
    (default: the top level)."""
    pairs = list(iter_audio(reader, entries, rate, "held-out clips", progress))
    clips = [wave for _, wave in pairs]
    embed_level = model.num_levels - 1 if embed_level is None else embed_level
    report = MusicReport(clips, rate, encoder_embedding(model, embed_level), labels=[e.speaker for e, _ in pairs])
    report.add("held-out originals (reference)", clips)
    for level in levels:
        recons = [model.reconstruct(torch.from_numpy(w)[None, None], level=level)[0, 0].numpy() for w in clips]
        report.add(f"their level-{level} reconstructions (hop {model.hops[level]})", recons)
    if others:
        report.add("other real tracks (not the reference)",
                   [w for _, w in iter_audio(reader, others, rate, "other tracks", progress)])
    report.add("white noise", white_noise(clips))
    return report


def chain_waves(chain: SamplingChain, labels: Sequence[str | None], seconds: float,
                settings: SamplingSettings | Mapping[int, SamplingSettings] = DEFAULT_SAMPLING,
                level: int | None = None, real: Sequence[np.ndarray] | None = None, start_level: int | None = None,
                prime_seconds: float = 0.0) -> list[np.ndarray]:
    """One sample per entry of ``labels`` (seed ``settings.seed + i``; settings for every level or per level),
    decoded at ``level`` (default: the chain's lowest). With ``real`` clips (one per label) and
    ``start_level``, the levels from ``start_level`` up start from each clip's own codes (teacher forcing:
    e.g. real top codes through the upsampler); with ``prime_seconds`` instead, every level continues the
    clip's first ``prime_seconds``."""
    model, waves = chain.model, []
    for i, label in enumerate(labels):
        s = (settings.reseeded(settings.seed + i) if isinstance(settings, SamplingSettings)
             else {lv: v.reseeded(v.seed + i) for lv, v in settings.items()})
        start, prime = None, None
        if real is not None:
            x = torch.from_numpy(np.ascontiguousarray(real[i][: int(seconds * chain.sample_rate)], np.float32))
            codes = dict(enumerate(model.encode(x[None, None])))  # {level: (1, N_l)}
            if start_level is not None:
                start = {lv: c for lv, c in codes.items() if lv >= start_level}
            else:
                prime = {lv: c[:, : chain.length(lv, prime_seconds)] for lv, c in codes.items()}
        codes = chain.sample_codes(1, seconds, label, s, prime=prime, start=start, progress=False)
        waves.append(chain.decode(codes, level, seconds, label)[0, 0].numpy())
    return waves
