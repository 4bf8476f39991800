"""Adversarial training of an audio autoencoder (HiFi-GAN, EnCodec, DAC recipes) as a step in two phases.

:class:`AdversarialObjective` wraps the reconstruction objective. The engine sees a step function in phases
(``audiolvm.engine.phases.PhasedStep``, recognised by its members) with one trained module besides the model,
``"disc"`` (:class:`Discriminators`), and runs, per step:

1. ``disc``: the model reconstructs the batch once (kept in the phase carry, with its graph); the discriminators
   score the real audio and each adversarial level's reconstruction (detached); their loss (hinge or least squares)
   is minimised by the discriminators' optimizer.
2. ``model``: the reconstruction terms of the kept output, plus per adversarial level the generator's adversarial
   loss ``adv/gen`` and feature matching ``adv/feat`` from the *updated* discriminators (real features recomputed
   without gradient), weighted by ``loss.weights``; minimised by the model's optimizer.

``adv.start_step`` delays the generator's adversarial terms (a factor 0 before it, on the device, so no step reads
the counter back): the discriminators train from the first step and catch up with a warm-started model first. The
counter is a buffer of the discriminator module, so it is checkpointed and a fine-tuned run continues it. With the
EnCodec balancer the terms that depend on a level's reconstruction share the gradient at that reconstruction by
their weights (``audiolvm.losses.balancer``); the VQ terms are added unbalanced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.losses.adversarial import ADVERSARIAL_LOSSES, feature_matching
from audiolvm.losses.balancer import Balancer
from audiolvm.models.multilevel import MultiLevelOutput
from audiolvm.models.objectives import AudioReconstructionObjective

ADV_TERMS = ("adv/gen", "adv/feat")
DISC = "disc"  #: the name of the discriminators' module and phase (their optimizer: ``train.groups.disc``)


class Discriminators(nn.Module):
    """The discriminators of a run by kind (their outputs concatenated), the optimizer-step counter that
    ``adv.start_step`` reads, and the balancer's gradient-norm averages when there is one."""

    def __init__(self, discriminators: Mapping[str, nn.Module], balancer: Balancer | None = None) -> None:
        super().__init__()
        if not discriminators:
            raise UsageError("adversarial training needs at least one discriminator (adv.discriminators)")
        self.discriminators = nn.ModuleDict(discriminators)
        self.balancer = balancer
        self.steps: torch.Tensor
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [out for d in self.discriminators.values() for out in d(x)]


def mean_logit(outs: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> torch.Tensor:
    """The mean score of a discriminator output: over patches, then over sub-discriminators (detached)."""
    return torch.stack([logits.detach().float().mean() for logits, _ in outs]).mean()


class AdversarialObjective:
    """The reconstruction objective ``base`` plus discriminators, in the phases ``("disc", "model")``.

    Args:
        base: the reconstruction objective (its weights must not name ``adv/*``).
        discriminators: the ``disc`` module.
        loss: ``"hinge"`` or ``"ls"`` (:data:`ADVERSARIAL_LOSSES`).
        weights: ``adv/gen`` and ``adv/feat`` weights.
        start_step: discriminator steps (micro-batches with accumulation) before the generator's adversarial
            terms switch on.
        levels: the levels whose reconstructions the discriminators judge (default: all).
    """

    phases = (DISC, "model")

    def __init__(self, base: AudioReconstructionObjective, discriminators: Discriminators, loss: str = "hinge",
                 weights: Mapping[str, float] | None = None, start_step: int = 0,
                 levels: Sequence[int] | None = None) -> None:
        if loss not in ADVERSARIAL_LOSSES:
            raise UsageError(f"adv.loss={loss!r} is unknown; use one of {sorted(ADVERSARIAL_LOSSES)}")
        self.base, self.disc = base, discriminators
        self.d_loss, self.g_loss = ADVERSARIAL_LOSSES[loss]
        self.weights = {"adv/gen": 1.0, "adv/feat": 2.0} | dict(weights or {})
        self.start_step, self.levels = start_step, list(levels) if levels else None

    def modules(self) -> dict[str, nn.Module]:
        return {DISC: self.disc}

    def phase(self, model: nn.Module, modules: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor],
              name: str, carry: dict[str, Any]) -> dict[str, torch.Tensor]:
        disc = cast(Discriminators, modules[DISC])  # what self.modules() names DISC
        if name == DISC:
            return self._disc_phase(model, disc, batch, carry)
        if name == "model":
            return self._model_phase(model, disc, batch, carry)
        raise UsageError(f"unknown phase {name!r}; this step has {self.phases}")

    def _judged(self, out: Any) -> list[tuple[int, torch.Tensor]]:
        """``(level, reconstruction)`` for each level the discriminators judge."""
        levels = out.levels if isinstance(out, MultiLevelOutput) else [out]
        chosen = self.levels if self.levels is not None else range(len(levels))
        bad = [i for i in chosen if not 0 <= i < len(levels)]
        if bad:
            raise UsageError(f"adv.levels names {bad}, but the model has {len(levels)} levels")
        return [(i, levels[i].recon) for i in chosen]

    def _output(self, model: nn.Module, batch: Mapping[str, torch.Tensor], carry: dict[str, Any]) -> Any:
        """The model's output for the micro-batch, computed once per step by whichever phase runs first (so the
        VQ's statistics update once) and kept, with its graph, for the other."""
        if "out" not in carry:
            carry["out"] = self.base.forward(model, batch)
        return carry["out"]

    def _disc_phase(self, model: nn.Module, disc: Discriminators, batch: Mapping[str, torch.Tensor],
                    carry: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self._output(model, batch, carry)
        real = disc(batch["audio"])
        real_logits = [logits for logits, _ in real]
        losses, fake_scores = [], []
        for _, recon in self._judged(out):
            fake = disc(recon.detach())
            losses.append(self.d_loss(real_logits, [logits for logits, _ in fake]))
            fake_scores.append(mean_logit(fake))
        if torch.is_grad_enabled() and disc.training:
            disc.steps += 1
        return {"loss": torch.stack(losses).mean(), "disc/real": mean_logit(real),
                "disc/fake": torch.stack(fake_scores).mean()}

    def _model_phase(self, model: nn.Module, disc: Discriminators, batch: Mapping[str, torch.Tensor],
                     carry: dict[str, Any]) -> dict[str, torch.Tensor]:
        audio = batch["audio"]
        out = self._output(model, batch, carry)
        with torch.no_grad():
            real_feats = [feats for _, feats in disc(audio)]
        on = (disc.steps > self.start_step).float()
        adv: dict[int, dict[str, torch.Tensor]] = {}
        for level, recon in self._judged(out):
            fake = disc(recon)
            adv[level] = {"adv/gen": on * self.g_loss([logits for logits, _ in fake]),
                          "adv/feat": on * feature_matching(real_feats, [feats for _, feats in fake])}
        return self.base.losses(out, audio, adv, self.weights, disc.balancer)


def balancer_keys(num_levels: int, weights: Mapping[str, float], bottleneck_prefix: str = "vq") -> list[tuple[str,
                                                                                                          str]]:
    """The ``(level key, term)`` pairs a balancer for this objective averages: every weighted term that is not a
    bottleneck or model term, plus the adversarial ones, for each level."""
    names = sorted({k for k in weights if not k.startswith(bottleneck_prefix + "/")
                    and k not in AudioReconstructionObjective.MODEL_TERMS} | set(ADV_TERMS))
    return [(f"l{i}", n) for i in range(num_levels) for n in names]
