"""Training objectives: callables ``(model, batch) -> dict`` of named losses and metrics, which is
all the engine sees. Loss weights are named in config (DAC's ``lambdas``); one line sums them and
every term is returned so that every term is logged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.losses.balancer import Balancer
from audiolvm.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiolvm.losses.waveform import waveform_loss
from audiolvm.models.autoencoder import AutoencoderOutput
from audiolvm.models.multilevel import MultiLevelOutput
from audiolvm.models.pitch import Pitch


class AudioReconstructionObjective:
    """Waveform L1/L2 + multi-resolution STFT (spectral convergence, log magnitude) + bottleneck terms,
    for single-level (:class:`Autoencoder`) and multi-level (:class:`MultiLevelAutoencoder`) models.

    ``__call__(model, batch)`` with ``batch["audio"]: Tensor[B x 1 x T]`` returns ``loss`` (the
    weighted sum over terms and levels) and every unweighted term plus the bottleneck metrics. With
    one level the names are bare (``waveform``, ``vq/perplexity``); with several they carry the level
    (``l0/waveform``, ``l2/vq/perplexity``) and each level's weighted loss is ``l<i>/loss``.

    Args:
        weights: per-term weights, e.g. ``{"waveform": 1, "stft/sc": 1, "vq/commitment": 1}``.
        stft: the multi-resolution STFT loss module.
        waveform: ``"l1"`` or ``"l2"``.
        level_weights: one multiplier per level (default 1 for every level).
        speaker: pass ``batch["speaker"]`` (training-speaker ids) to the model, for speaker-conditioned
            decoders; the model's own terms (``speaker/encoder``) are added with their weight (default 1).
        mel: a :class:`MultiScaleMelLoss`, giving the per-level term ``mel`` (weight ``weights["mel"]``).
        pitch: pass the batch's F0 (``batch["f0"]``, ``batch["voiced"]``) to the model, for pitch-aware
            decoders; the F0 predictor's terms (``pitch/f0``, ``pitch/voicing``) are model terms.
    """

    # from the model, not per level
    MODEL_TERMS = frozenset({"speaker/encoder", "speaker/adversary", "pitch/f0", "pitch/voicing"})

    def __init__(
        self,
        weights: Mapping[str, float],
        stft: MultiResolutionSTFTLoss,
        waveform: str = "l1",
        level_weights: Sequence[float] | None = None,
        bottleneck_prefix: str = "vq",
        speaker: bool = False,
        mel: MultiScaleMelLoss | None = None,
        pitch: bool = False,
    ) -> None:
        self.weights, self.speaker, self.mel, self.pitch = dict(weights), speaker, mel, pitch
        self.stft, self.waveform, self.prefix = stft, waveform, bottleneck_prefix
        self.level_weights = list(level_weights) if level_weights is not None else None
        waveform_loss(torch.zeros(1), torch.zeros(1), waveform)  # validate the kind early

    def level_terms(self, out: AutoencoderOutput, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted loss terms and bottleneck metrics of one level's output."""
        terms = self.recon_terms(out.recon, audio)
        terms.update({f"{self.prefix}/{k}": v for k, v in out.bottleneck.losses.items()})
        missing = sorted(set(self.weights) - set(terms) - self.MODEL_TERMS)
        if missing:
            raise UnknownNameError(
                f"loss.weights names {missing}, which this model does not produce; valid terms: {sorted(terms)}"
            )
        metrics = {f"{self.prefix}/{k}": v.detach() for k, v in out.bottleneck.metrics.items()}
        return {**terms, **metrics}

    def recon_terms(self, recon: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms comparing a reconstruction ``Tensor[B x 1 x T]`` with ``audio``: waveform, STFT and
        (with a mel loss) mel; ``weighted(recon_terms(...))`` is the reconstruction part of a level's loss."""
        terms = {"waveform": waveform_loss(recon, audio, self.waveform)}
        terms.update({f"stft/{k}": v for k, v in self.stft(recon, audio).items()})
        if self.mel is not None:
            terms["mel"] = self.mel(recon, audio)
        return terms

    def weighted(self, terms: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """``sum_k w_k terms[k]`` over the weighted terms present (``weights``: default the objective's own)."""
        weights = self.weights if weights is None else weights
        return sum(w * terms[name] for name, w in weights.items()  # type: ignore[return-value]
                   if w != 0.0 and name not in self.MODEL_TERMS and name in terms)

    def level_loss(self, terms: Mapping[str, torch.Tensor], recon: torch.Tensor, weights: Mapping[str, float],
                   balancer: Balancer | None = None, key: str = "") -> torch.Tensor:
        """One level's loss: the weighted sum of its terms, or with ``balancer`` the terms of the reconstruction
        ``recon`` through it (each weight its share of the gradient at ``recon``) plus the bottleneck terms."""
        if balancer is None:
            return self.weighted(terms, weights)
        bottleneck = {k: v for k, v in terms.items() if k.startswith(self.prefix + "/")}
        of_recon = {k: v for k, v in terms.items() if k in weights and k not in bottleneck}
        return balancer.balance(recon, of_recon, weights, key) + self.weighted(bottleneck, weights)

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> MultiLevelOutput | AutoencoderOutput:
        """The model's output for a batch (with its speakers and F0 where the model takes them)."""
        kwargs: dict[str, Any] = {"speaker": batch["speaker"]} if self.speaker else {}
        if self.pitch:
            kwargs["pitch"] = Pitch(batch["f0"], batch["voiced"])
        return model(batch["audio"], **kwargs)

    def losses(self, out: MultiLevelOutput | AutoencoderOutput, audio: torch.Tensor,
               extra: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
               extra_weights: Mapping[str, float] | None = None,
               balancer: Balancer | None = None) -> dict[str, torch.Tensor]:
        """``loss`` and the logged terms of a model output against the audio it reconstructs. ``extra``: further
        unweighted terms by level (the adversarial ones), weighted by ``extra_weights``; ``balancer``: combine each
        level's terms with it (:meth:`level_loss`)."""
        levels = out.levels if isinstance(out, MultiLevelOutput) else [out]
        weights = {**self.weights, **(extra_weights or {})}
        result = self._level_loss(levels, audio, extra or {}, weights, balancer)
        return self.add_model_terms(result, out)

    def add_model_terms(self, result: dict[str, torch.Tensor], out: MultiLevelOutput | AutoencoderOutput
                        ) -> dict[str, torch.Tensor]:
        """Add the model-wide terms (``speaker/encoder``, ``pitch/f0``) to ``result["loss"]`` and log them with the
        model-wide metrics."""
        if not isinstance(out, MultiLevelOutput):
            return result
        for name, value in out.losses.items():
            result["loss"] = result["loss"] + self.weights.get(name, 1.0) * value
            result[name] = value.detach()
        result.update({name: value.detach() for name, value in out.metrics.items()})
        return result

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.losses(self.forward(model, batch), batch["audio"])

    def _level_loss(self, levels: list, audio: torch.Tensor, extra: Mapping[int, Mapping[str, torch.Tensor]],
                    weights: Mapping[str, float], balancer: Balancer | None) -> dict[str, torch.Tensor]:
        level_weights = self.level_weights or [1.0] * len(levels)
        if len(level_weights) != len(levels):
            raise UsageError(f"{len(level_weights)} level weights for a model with {len(levels)} levels")
        if len(levels) == 1:
            terms = {**self.level_terms(levels[0], audio), **extra.get(0, {})}
            return {"loss": level_weights[0] * self.level_loss(terms, levels[0].recon, weights, balancer, "l0"),
                    **terms}
        logged: dict[str, torch.Tensor] = {}
        total = audio.new_zeros((), dtype=torch.float32)
        for i, (level_out, w) in enumerate(zip(levels, level_weights, strict=True)):
            terms = {**self.level_terms(level_out, audio), **extra.get(i, {})}
            level_loss = self.level_loss(terms, level_out.recon, weights, balancer, f"l{i}")
            total = total + w * level_loss
            logged.update({f"l{i}/{k}": v for k, v in terms.items()})
            logged[f"l{i}/loss"] = level_loss.detach()
        return {"loss": total, **logged}
