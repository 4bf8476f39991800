"""A pretrained GE2E speaker encoder (Wan et al. 2018), with Resemblyzer's weights, in torch.

Resemblyzer (``pip install 'audiolvm[speaker]'``) ships a GE2E encoder trained on thousands of real speakers in its
wheel (``pretrained.pt``). :class:`GE2E` is that network (40-band mel power spectrogram of 25 ms windows every
10 ms at 16 kHz, a 3-layer LSTM of 256, a linear layer, ReLU, unit length), with its mel front end in torch, so it
runs on a batch of crops on any device. The weights are read from the installed package as tensors only
(``torch.load(weights_only=True)``): nothing is unpickled, and the package itself is never imported (its import
pulls in webrtcvad).

:meth:`GE2E.embed` follows ``VoiceEncoder.embed_utterance``: an utterance longer than one partial window (1.6 s)
is cut into windows at 1.3 per second, the last one zero-padded if it covers at least 75 % of a window, and the
mean of the windows' embeddings is normalised. A shorter one (a training crop) is embedded from its own frames,
where Resemblyzer would zero-pad it to a window. Resemblyzer's ``preprocess_wav`` also raises the volume to
-30 dBFS and trims long silences with webrtcvad; :meth:`GE2E.embed` does the first (``normalize``) and not the
second.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import MissingFileError
from audiolvm.core.features import mel_filterbank, stft_magnitude

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40  # 25 ms windows every 10 ms
PARTIAL_FRAMES = 160  # 1.6 s
EMBEDDING_DIM = 256
TARGET_DBFS = -30.0
INSTALL_HINT = "pip install 'audiolvm[speaker]'"


def resemblyzer_weights() -> Path:
    """The path of Resemblyzer's ``pretrained.pt`` in its installed package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise MissingFileError("the GE2E speaker encoder needs Resemblyzer's pretrained weights (pretrained.pt in its "
                           f"package), and Resemblyzer is not installed here; install it with: {INSTALL_HINT}")


class GE2E(nn.Module):
    """``embed(audio : Tensor[B x 1 x T] at 16 kHz) -> Tensor[B x 256]``, unit-length speaker embeddings."""

    filterbank: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, EMBEDDING_DIM, 3, batch_first=True)
        self.linear = nn.Linear(EMBEDDING_DIM, EMBEDDING_DIM)
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, 0.0, None)),
                             persistent=False)

    @classmethod
    def pretrained(cls, path: Path | None = None) -> GE2E:
        """The network with Resemblyzer's weights (``path``: another ``pretrained.pt`` of the same shape), frozen
        and in eval mode."""
        path = path or resemblyzer_weights()
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        net = cls()
        net.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=False)
        missing = [k for k in net.state_dict() if k not in state]
        if missing:
            raise MissingFileError(f"{path} lacks the GE2E tensors {missing}: it is not a Resemblyzer encoder")
        return net.eval().requires_grad_(False)

    def mels(self, audio: torch.Tensor) -> torch.Tensor:
        """``Tensor[B x T]`` -> mel power frames ``Tensor[B x frames x 40]`` (librosa's ``melspectrogram``)."""
        power = stft_magnitude(audio, N_FFT, HOP, power=2.0)  # (B, F, frames)
        return torch.matmul(self.filterbank, power.to(self.filterbank.dtype)).transpose(1, 2)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel frames ``Tensor[B x frames x 40]`` -> unit-length embeddings ``Tensor[B x 256]``."""
        _, (hidden, _) = self.lstm(mels)
        raw = F.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def embed(self, audio: torch.Tensor, normalize: bool = True, rate: float = 1.3,
              min_coverage: float = 0.75) -> torch.Tensor:
        """``audio : Tensor[B x 1 x T]`` (16 kHz) -> ``Tensor[B x 256]``: one embedding per item, the normalised mean
        over partial windows as ``VoiceEncoder.embed_utterance`` computes it (under one window: from the item's own
        frames). ``normalize``: raise each item's
        volume to -30 dBFS first, as Resemblyzer's preprocessing does (never lowered)."""
        wave = audio.reshape(audio.shape[0], -1).to(self.filterbank.dtype)
        if normalize:
            power = wave.pow(2).mean(-1, keepdim=True).clamp_min(1e-10)
            change = (TARGET_DBFS - 10.0 * torch.log10(power)).clamp_min(0.0)
            wave = wave * torch.pow(10.0, change / 20.0)
        if wave.shape[-1] < PARTIAL_FRAMES * HOP:  # shorter than one window: its own frames, not zero-padded
            return self(self.mels(wave))
        starts = partial_starts(wave.shape[-1], rate, min_coverage)
        end = starts[-1] + PARTIAL_FRAMES * HOP
        if end > wave.shape[-1]:
            wave = F.pad(wave, (0, end - wave.shape[-1]))
        mels = self.mels(wave)  # (B, frames, 40)
        windows = torch.stack([mels[:, s // HOP: s // HOP + PARTIAL_FRAMES] for s in starts], 1)  # (B, W, 160, 40)
        partial = self(windows.flatten(0, 1)).unflatten(0, windows.shape[:2])  # (B, W, 256)
        mean = partial.mean(1)
        return mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-12)


def partial_starts(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
    """Start samples of the partial windows of an ``n_samples`` utterance (``VoiceEncoder.compute_partial_slices``):
    windows of 160 frames every ``16000 / rate`` samples (in whole frames) covering the utterance; the last one kept
    if at least ``min_coverage`` of it is audio, and at least one window."""
    n_frames = math.ceil((n_samples + 1) / HOP)
    step = round((SAMPLE_RATE / rate) / HOP)
    starts = [i * HOP for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)]
    if len(starts) > 1 and (n_samples - starts[-1]) / (PARTIAL_FRAMES * HOP) < min_coverage:
        starts = starts[:-1]
    return starts
