"""Speaker classification of whole utterances with a trained :class:`SpeakerClassifier`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from audiolvm.core.audio import resample
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.models.classifier import SpeakerClassifier


@torch.no_grad()
def classify_wave(classifier: SpeakerClassifier, wave: np.ndarray | torch.Tensor, sample_rate: int) -> str:
    """The predicted speaker name of one waveform (``(T,)``, ``(1, T)`` or ``(1, 1, T)``) at ``sample_rate``;
    resampled to the classifier's rate if they differ. The classifier is put in eval mode."""
    x = wave.detach().float().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float32)
    x = resample(x.reshape(-1), sample_rate, classifier.sample_rate)  # (T',)
    classifier.eval()
    device = next(classifier.parameters()).device
    return classifier.predict(torch.from_numpy(np.ascontiguousarray(x)).to(device)[None, None])[0]  # (1, 1, T')


@dataclass
class SpeakerAccuracy:
    """Whole-utterance accuracy, overall and per true speaker."""

    speakers: list[str] = field(default_factory=list)  # true speaker of each scored utterance
    predicted: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.speakers)

    @property
    def accuracy(self) -> float:
        return float(np.mean([p == s for p, s in zip(self.predicted, self.speakers, strict=True)])) if self.n else 0.0

    def per_speaker(self) -> dict[str, float]:
        out: dict[str, list[bool]] = {}
        for s, p in zip(self.speakers, self.predicted, strict=True):
            out.setdefault(s, []).append(p == s)
        return {s: float(np.mean(v)) for s, v in sorted(out.items())}

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "per_speaker": self.per_speaker()}


def utterance_accuracy(classifier: SpeakerClassifier, reader: CorpusReader, entries: Sequence[Entry],
                       sample_rate: int | None = None, progress: bool = False) -> SpeakerAccuracy:
    """Classify every whole utterance of ``entries`` (unreadable files are skipped and logged)."""
    rate = sample_rate or classifier.sample_rate
    result = SpeakerAccuracy()
    for entry, wave in iter_audio(reader, entries, rate, "classify", progress):
        result.speakers.append(entry.speaker)
        result.predicted.append(classify_wave(classifier, wave, rate))
    return result
