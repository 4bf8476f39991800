"""Training objectives: callables ``(model, batch) -> dict`` of named losses and metrics, which is
all the engine sees. Loss weights are named in config (DAC's ``lambdas``); one line sums them and
every term is returned so that every term is logged."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from audiolvm.losses.spectral import MultiResolutionSTFTLoss
from audiolvm.losses.waveform import waveform_loss
from audiolvm.models.autoencoder import Autoencoder

#: loss terms an audio reconstruction objective can weight (bottleneck terms are prefixed by ``vq/``)
AUDIO_TERMS = ("waveform", "stft/sc", "stft/logmag")


class AudioReconstructionObjective:
    """Waveform L1/L2 + multi-resolution STFT (spectral convergence, log magnitude) + bottleneck terms.

    ``__call__(model, batch)`` with ``batch["audio"]: Tensor[B x 1 x T]`` returns a dict with
    ``loss`` (the weighted sum), every unweighted term, and the bottleneck's metrics under
    ``<prefix>/`` (e.g. ``vq/perplexity``).
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        stft: MultiResolutionSTFTLoss,
        waveform: str = "l1",
        bottleneck_prefix: str = "vq",
    ) -> None:
        self.weights = dict(weights)
        self.stft, self.waveform, self.prefix = stft, waveform, bottleneck_prefix
        waveform_loss(torch.zeros(1), torch.zeros(1), waveform)  # validate the kind early

    def terms(self, model: Autoencoder, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(audio)
        spec = self.stft(out.recon, audio)
        terms = {"waveform": waveform_loss(out.recon, audio, self.waveform)}
        terms.update({f"stft/{k}": v for k, v in spec.items()})
        terms.update({f"{self.prefix}/{k}": v for k, v in out.bottleneck.losses.items()})
        missing = sorted(set(self.weights) - set(terms))
        if missing:
            raise KeyError(
                f"loss.weights names {missing}, which this model does not produce; valid terms: {sorted(terms)}"
            )
        metrics = {f"{self.prefix}/{k}": v.detach() for k, v in out.bottleneck.metrics.items()}
        return {**terms, **metrics}

    def __call__(self, model: Autoencoder, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = self.terms(model, batch["audio"])
        loss = sum(w * terms[name] for name, w in self.weights.items() if w != 0.0)
        return {"loss": loss, **terms}
