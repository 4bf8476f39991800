"""An independent speaker classifier (log-mel -> small 2-D CNN -> mean+std pooling -> logits) and its
training objective. It is trained on real audio only and used to score voice conversion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.core.features import LogMel


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 - BN - ReLU - 2x2 max pool (ceil mode, so a single frame survives)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over time of the valid frames.

    Args:
        x: ``Tensor[B x C x N]``; mask: ``Bool[B x N]`` (at least one True per row).
    Returns:
        ``Tensor[B x 2C]`` (means, then standard deviations).
    """
    w = mask.to(x.dtype).unsqueeze(1)  # (B, 1, N)
    count = w.sum(-1).clamp_min(1.0)  # (B, 1)
    mean = (x * w).sum(-1) / count  # (B, C)
    var = ((x - mean.unsqueeze(-1)).square() * w).sum(-1) / count  # (B, C)
    return torch.cat([mean, var.clamp_min(1e-8).sqrt()], dim=1)


class SpeakerClassifier(nn.Module):
    """Speaker identity from a waveform of any length (about 0.25 s or more).

    Args:
        num_speakers: number of output classes.
        sample_rate: rate of the input audio (the mel front end's).
        n_mels: mel bins (10 ms hop, 32 ms window at any rate).
        channels: one conv-BN-ReLU-pool block per entry; each halves frequency and time.
        embed_dim: width of the speaker embedding before the linear classifier.
        dropout: dropout on the embedding during training.
        speakers: optional names of the classes (saved with the config, used for reporting).
    """

    def __init__(self, num_speakers: int, sample_rate: int, n_mels: int = 64,
                 channels: Sequence[int] = (32, 64, 128), embed_dim: int = 128, dropout: float = 0.1,
                 speakers: Sequence[str] | None = None) -> None:
        super().__init__()
        if num_speakers < 2 or not channels:
            raise UsageError(f"SpeakerClassifier: num_speakers={num_speakers} must be >= 2 and channels="
                             f"{list(channels)} non-empty")
        if speakers is not None and len(speakers) != num_speakers:
            raise UsageError(f"SpeakerClassifier: {len(speakers)} speaker names for num_speakers={num_speakers}")
        self.sample_rate, self.num_speakers = int(sample_rate), int(num_speakers)
        self.speakers = list(speakers) if speakers is not None else [str(i) for i in range(num_speakers)]
        self.hop = max(1, sample_rate // 100)
        n_fft = 1 << (2 * self.hop - 1).bit_length()  # the power of two >= 2 hops (512 at 16 kHz)
        self.mel = LogMel(sample_rate, n_fft=n_fft, hop_length=self.hop, n_mels=n_mels)
        self.norm = nn.BatchNorm1d(n_mels)  # per-bin input normalisation with running statistics
        blocks, c_in = [], 1
        for c in channels:
            blocks.append(_conv_block(c_in, c))
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        self.pools = len(channels)
        freq = n_mels
        for _ in channels:
            freq = -(-freq // 2)  # ceil
        self.embedding = nn.Sequential(nn.Linear(2 * c_in * freq, embed_dim), nn.BatchNorm1d(embed_dim),
                                       nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_speakers)

    def frame_mask(self, lengths: torch.Tensor | None, batch: int, frames: int, device: torch.device) -> torch.Tensor:
        """``Bool[B x frames]`` of the CNN's output frames that see real (unpadded) audio."""
        if lengths is None:
            return torch.ones(batch, frames, dtype=torch.bool, device=device)
        stride = self.hop * 2 ** self.pools
        valid = (lengths.to(device).long() + stride - 1) // stride  # ceil, samples -> output frames
        return torch.arange(frames, device=device)[None] < valid.clamp_min(1)[:, None]

    def embed(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``audio: Tensor[B x 1 x T]`` (``lengths``: valid samples per item) -> ``Tensor[B x embed_dim]``."""
        mel = self.norm(self.mel(audio.squeeze(1)))  # (B, n_mels, frames)
        h = self.cnn(mel.unsqueeze(1))  # (B, C, F', N)
        b, c, f, n = h.shape
        h = h.reshape(b, c * f, n)  # (B, C*F', N)
        return self.embedding(masked_mean_std(h, self.frame_mask(lengths, b, n, h.device)))

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``audio: Tensor[B x 1 x T]`` -> logits ``Tensor[B x num_speakers]``."""
        return self.head(self.dropout(self.embed(audio, lengths)))

    @torch.no_grad()
    def predict(self, audio: torch.Tensor) -> list[str]:
        """Predicted speaker names of ``audio: Tensor[B x 1 x T]`` (eval mode is the caller's choice)."""
        return [self.speakers[k] for k in self(audio).argmax(-1).tolist()]


class ClassificationObjective:
    """The engine's step function: ``(model, batch) -> {"loss", "accuracy"}``.

    ``batch["audio"]: Tensor[B x 1 x T]``, ``batch["speaker"]: Long[B]`` (-1 = unknown, ignored) and
    optionally ``batch["length"]: Long[B]`` (valid samples; padding is left out of the pooling).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = torch.as_tensor(batch["speaker"]).long()
        logits = model(batch["audio"], batch.get("length"))  # (B, S)
        loss = F.cross_entropy(logits, target, ignore_index=-1, label_smoothing=self.label_smoothing)
        known = target >= 0
        correct = (logits.argmax(-1) == target) & known
        accuracy = correct.sum().float() / known.sum().clamp_min(1).float()
        return {"loss": loss, "accuracy": accuracy.detach()}
