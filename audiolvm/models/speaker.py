"""Speaker vectors for speaker-conditioned decoding (voice conversion).

:class:`SpeakerConditioner` turns whatever identifies a speaker into one global vector per item:

* ``LongTensor[B]``: ids of training speakers, looked up in a learned table;
* ``Tensor[B x 1 x T]``: reference audio, mapped by the model's speaker encoder (when it has one), so a clip of an
  unseen speaker works: :class:`SpeakerEncoder`, trained jointly from scratch, or :class:`GE2ESpeakerEncoder`, a
  pretrained GE2E encoder that has heard thousands of real voices, frozen, behind a trained linear map;
* ``Tensor[B x dim]``: a vector given directly (e.g. an average over several reference clips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.core.features import LogMel
from audiolvm.nn import ge2e
from audiolvm.nn.reversal import reverse_gradient


class SpeakerEncoder(nn.Module):
    """Reference audio ``Tensor[B x 1 x T]`` -> speaker vector ``Tensor[B x dim]``: log-mel, three 1-D
    convs over time, mean and standard deviation pooled over frames, a linear projection."""

    def __init__(self, dim: int, sample_rate: int = 16000, n_mels: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.mel = LogMel(sample_rate, n_fft=1024, hop_length=256, n_mels=n_mels)
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.ReLU(),
        )
        self.out = nn.Linear(2 * hidden, dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mel = self.mel(audio[:, 0])  # (B, n_mels, frames)
        mel = mel - mel.mean(dim=(1, 2), keepdim=True)  # loudness-invariant
        h = self.convs(mel)  # (B, hidden, frames)
        return self.out(torch.cat([h.mean(-1), h.std(-1, unbiased=False)], dim=1))  # (B, dim)


class GE2ESpeakerEncoder(nn.Module):
    """Reference audio ``Tensor[B x 1 x T]`` (16 kHz) -> speaker vector ``Tensor[B x dim]``: the embedding of a
    pretrained GE2E encoder (:mod:`audiolvm.nn.ge2e`, Resemblyzer's weights), then a trained linear map.

    The GE2E network is frozen and is not part of this module's state: its weights are not trained, not in the
    optimizer, and not saved with the model; they are read from Resemblyzer's package whenever the model is built
    (``pip install 'audiolvm[speaker]'``). It follows the module across devices and dtypes. It ``leads``: in
    training the speaker table is pulled toward it, not it toward the table
    (:meth:`SpeakerConditioner.training_vectors`).
    """

    leads = True

    def __init__(self, dim: int, sample_rate: int = 16000) -> None:
        super().__init__()
        if sample_rate != ge2e.SAMPLE_RATE:
            raise UsageError(f"model.speaker.encoder_kind=ge2e reads {ge2e.SAMPLE_RATE} Hz audio (the GE2E encoder's "
                             f"rate) and this model runs at {sample_rate} Hz; set data.sample_rate="
                             f"{ge2e.SAMPLE_RATE} or use model.speaker.encoder_kind=trained")
        self._frozen = (ge2e.GE2E.pretrained(),)  # a tuple: not a child module, so not in state_dict / parameters
        self.out = nn.Linear(ge2e.EMBEDDING_DIM, dim)

    @property
    def ge2e(self) -> ge2e.GE2E:
        return self._frozen[0]

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .double() move the frozen GE2E too
        self.ge2e._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """The GE2E embeddings ``Tensor[B x 256]`` (unit length) of ``audio : Tensor[B x 1 x T]``."""
        with torch.no_grad():
            return self.ge2e.embed(audio)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        # unit-length embeddings scaled to unit RMS per component, so the linear map starts at the table's scale
        return self.out(self.embed(audio).to(self.out.weight.dtype) * math.sqrt(ge2e.EMBEDDING_DIM))


ENCODER_KINDS = ("trained", "ge2e")


class SpeakerConditioner(nn.Module):
    """A learned table over the training speakers ``names`` and, optionally, a speaker encoder (``encoder_kind``:
    ``trained``, :class:`SpeakerEncoder`; ``ge2e``, :class:`GE2ESpeakerEncoder`).

    In training, with an encoder, :meth:`training_vectors` decodes a random ``encoder_mix`` fraction of
    the items with the encoder's vector of their own input instead of the table's, and returns the
    loss pulling the encoder's vector toward the (detached) table vector of the item's speaker. An encoder that
    ``leads`` (the pretrained GE2E one) is the reference instead: the loss pulls each table row toward the
    (detached) encoder vectors of its speaker's crops, so the table takes on the geometry of an embedding that
    has heard many voices, and a new voice's vector lands among the rows of the voices it resembles; the encoder's
    linear map learns only from the decoders' loss.
    """

    def __init__(self, names: Sequence[str], dim: int = 64, encoder: bool = False, sample_rate: int = 16000,
                 n_mels: int = 64, encoder_mix: float = 0.5, encoder_kind: str = "trained") -> None:
        super().__init__()
        if not names:
            raise UsageError("SpeakerConditioner needs the training speakers' names (got none)")
        if not 0.0 <= encoder_mix <= 1.0:
            raise UsageError(f"encoder_mix must be in [0, 1], got {encoder_mix}")
        self.names, self.dim, self.encoder_mix = list(names), dim, encoder_mix
        self._index = {n: i for i, n in enumerate(self.names)}
        self.table = nn.Embedding(len(self.names), dim)
        nn.init.normal_(self.table.weight, std=1.0)
        if encoder_kind not in ENCODER_KINDS:
            raise UsageError(f"model.speaker.encoder_kind={encoder_kind!r} is unknown; use one of "
                             f"{', '.join(ENCODER_KINDS)}")
        self.encoder: nn.Module | None = None
        if encoder:
            self.encoder = (GE2ESpeakerEncoder(dim, sample_rate) if encoder_kind == "ge2e" else
                            SpeakerEncoder(dim, sample_rate, n_mels))

    def ids(self, names: Sequence[str], device: torch.device | None = None) -> torch.Tensor:
        """``LongTensor[len(names)]`` of table ids; an unknown name is a KeyError listing the choices."""
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise UnknownNameError(f"speaker {unknown[0]!r} is not one of the model's training speakers "
                           f"({', '.join(self.names)}); use one of those, or a reference clip if the model "
                           "has a speaker encoder (model.speaker.encoder)")
        return torch.tensor([self._index[n] for n in names], dtype=torch.long, device=device)

    def check_new_name(self, name: str) -> None:
        """ValueError if ``name`` is already one of the speakers (an enrolled voice needs a name of its own)."""
        if name in self._index:
            raise UsageError(f"speaker {name!r} is already one of the model's speakers ({', '.join(self.names)}); "
                             "choose another name")

    def add_speaker(self, name: str, vector: torch.Tensor) -> int:
        """Append ``name`` with ``vector : Tensor[dim]`` as a new table row (enrolment); returns its id. The other
        rows are unchanged."""
        self.check_new_name(name)
        weight = self.table.weight.detach()
        table = nn.Embedding(len(self.names) + 1, self.dim).to(weight.device)
        with torch.no_grad():
            table.weight.copy_(torch.cat([weight, vector.reshape(1, self.dim).to(weight)]))
        table.weight.requires_grad_(self.table.weight.requires_grad)
        self.table = table
        self._index[name] = len(self.names)
        self.names.append(name)
        return self._index[name]

    def forward(self, speaker: torch.Tensor) -> torch.Tensor:
        """Ids ``LongTensor[B]``, audio ``Tensor[B x 1 x T]`` or vectors ``Tensor[B x dim]`` -> ``Tensor[B x dim]``."""
        if not speaker.is_floating_point():
            if speaker.dim() != 1:
                raise UsageError(f"speaker ids must be a LongTensor[B], got shape {tuple(speaker.shape)}")
            if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= len(self.names)):
                raise UsageError(f"speaker ids must be in [0, {len(self.names)}) (the training speakers); got "
                                 f"{speaker.tolist()}. A held-out speaker (id -1) needs a reference clip")
            return self.table(speaker)
        if speaker.dim() == 3:
            if self.encoder is None:
                raise UsageError("this model has no speaker encoder (model.speaker.encoder: false): give a "
                                 "training speaker's id or name instead of reference audio")
            return self.encoder(speaker)
        if speaker.dim() == 2 and speaker.shape[1] == self.dim:
            return speaker
        raise UsageError(f"speaker must be ids LongTensor[B], audio Tensor[B x 1 x T] or vectors Tensor[B x "
                         f"{self.dim}], got {speaker.dtype} of shape {tuple(speaker.shape)}")

    def training_vectors(self, ids: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training-time vectors ``Tensor[B x dim]`` for ids ``LongTensor[B]`` with input ``audio``, and the
        encoder's loss terms (none without an encoder)."""
        table = self(ids)
        if self.encoder is None:
            return table, {}
        enc = self.encoder(audio)  # (B, dim)
        use_enc = (torch.rand(ids.shape[0], 1, device=ids.device) < self.encoder_mix).to(enc.dtype)  # (B, 1)
        vectors = use_enc * enc + (1.0 - use_enc) * table
        if getattr(self.encoder, "leads", False):  # the table follows the pretrained encoder's geometry
            return vectors, {"speaker/encoder": F.mse_loss(table, enc.detach())}
        return vectors, {"speaker/encoder": F.mse_loss(enc, table.detach())}


class SpeakerAdversary(nn.Module):
    """Speaker-invariance pressure on content features (``model.speaker.adversary``): a frame-wise speaker
    classifier behind a gradient reversal.

    ``forward(z, ids)`` with features ``Tensor[B x D x N]`` and training-speaker ids ``LongTensor[B]`` returns the
    cross-entropy of every frame's speaker prediction (the classifier minimises it) and the frames' accuracy. The
    features receive that loss's gradient times ``-scale``: the encoder is pushed to make the speaker unreadable
    from every frame of its codes while the classifier keeps trying to read it. ``pool``: one prediction per item
    from the mean of its frames' logits instead (the speaker read from a whole crop). ``num_codes`` > 0: one
    prediction per item by a linear classifier on the crop's soft code histogram (:func:`soft_code_histogram`), the
    form of the speaker probe (a logistic regression on code histograms); ``forward`` then needs the level's
    ``codebook``."""

    def __init__(self, dim: int, num_speakers: int, width: int = 128, scale: float = 1.0, pool: bool = False,
                 num_codes: int = 0) -> None:
        super().__init__()
        if scale <= 0:
            raise UsageError(f"the adversary's gradient-reversal scale must be > 0, got {scale}")
        if pool and num_codes:
            raise UsageError("a speaker adversary reads either pooled frame logits or code histograms, not both")
        self.scale, self.pool, self.histogram = scale, pool, num_codes > 0
        self.net = (nn.Sequential(nn.Conv1d(num_codes, num_speakers, 1)) if num_codes else  # reads (B, K, 1)
                    nn.Sequential(nn.Conv1d(dim, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv1d(width, num_speakers, 1)))

    def add_speaker(self) -> None:
        """One more class with zero weights (the model gained an enrolled speaker; the adversary only trains)."""
        last = cast(nn.Conv1d, self.net[-1])  # built (and grown) as a Conv1d
        grown = nn.Conv1d(last.in_channels, last.out_channels + 1, 1).to(last.weight.device)
        grown_bias, last_bias = grown.bias, last.bias
        assert grown_bias is not None and last_bias is not None  # nn.Conv1d's default bias=True
        with torch.no_grad():
            grown.weight.zero_()
            grown_bias.zero_()
            grown.weight[:-1].copy_(last.weight)
            grown_bias[:-1].copy_(last_bias)
        self.net[-1] = grown

    def forward(self, z: torch.Tensor, ids: torch.Tensor,
                codebook: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = reverse_gradient(z, self.scale)
        if self.histogram:
            if codebook is None:
                raise UsageError("the code-histogram adversary needs the level's codebook Tensor[K x D]")
            logits = self.net(soft_code_histogram(z, codebook)[..., None] * codebook.shape[0])  # (B, S, 1)
        else:
            logits = self.net(z)  # (B, S, N)
        if self.pool:  # one prediction per item from its frames' mean logits
            logits = logits.mean(-1, keepdim=True)  # (B, S, 1)
        target = ids[:, None].expand(-1, logits.shape[-1])  # (B, N) or (B, 1)
        loss = F.cross_entropy(logits.float(), target)
        accuracy = (logits.detach().argmax(1) == target).float().mean()
        return loss, accuracy


def soft_code_histogram(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``Tensor[B x K]``: each item's code histogram, made differentiable. Every frame of ``z : Tensor[B x D x N]``
    is a softmax over its negative squared distances to the ``codebook : Tensor[K x D]`` (treated as constant),
    at a temperature set from the batch itself: the mean gap between each frame's nearest and second-nearest code,
    so the runner-up code gets weight e^-1 of the nearest's on average whatever the feature scale. The mean over
    frames is the soft histogram; its argmax weights are the hard codes' (a VQ's z sits on its nearest code)."""
    frames = z.movedim(1, -1).float()  # (B, N, D)
    book = codebook.detach().float()  # (K, D)
    d = (frames.pow(2).sum(-1, keepdim=True) - 2 * frames @ book.T + book.pow(2).sum(-1))  # (B, N, K)
    two = d.detach().topk(min(2, book.shape[0]), dim=-1, largest=False).values  # (B, N, 2)
    tau = (two[..., -1] - two[..., 0]).mean().clamp_min(1e-8)
    return torch.softmax(-d / tau, dim=-1).mean(1)  # (B, K)
