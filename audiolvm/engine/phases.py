"""Steps in phases, each phase updating one trained module with its own optimizer (adversarial training), and a
moving average of the model's weights.

A plain step function ``(model, batch) -> {"loss": ...}`` has one phase: the model's. A :class:`PhasedStep` adds
modules trained beside the model (discriminators) and names the phases of one step in their update order, for
example ``("disc", "model")``: the discriminators' loss is minimised and their optimizer steps, then the model's.
The engine still knows no model: it sees module names, one loss per phase and one optimizer per module.

Every phase's forward goes through one module, :class:`PhasedModules` (the model plus the other modules, the
forward being one phase of the step function), so that the one DDP wrapper Accelerate puts around it sees every
forward and all-reduces every module's gradients. A phase may leave values in ``carry``, a dict kept for one
micro-batch across the phases of a step: the generator's output, computed once in the discriminator phase and
reused (with its graph) in the model phase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import nn

from audiolvm.config import TrainConfig
from audiolvm.core.errors import UsageError

MODEL = "model"  #: the phase (and optimizer group) of the model itself


@runtime_checkable
class PhasedStep(Protocol):
    """A step function in phases, recognised by its members (so a model family's objective implements it without
    importing the engine). ``phases`` is the default update order, each ``"model"`` or a key of :meth:`modules`.
    Entries must be named uniquely across phases, except ``loss``, which the engine logs as ``loss`` for the model's
    phase and ``loss/<name>`` for the others."""

    phases: tuple[str, ...]

    def modules(self) -> dict[str, nn.Module]:
        """The modules trained beside the model, by name (their parameters get their own optimizer)."""
        ...

    def phase(self, model: nn.Module, modules: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor],
              name: str, carry: dict[str, Any]) -> Mapping[str, torch.Tensor]:
        """One phase of one micro-batch: a dict of scalar tensors whose ``loss`` the phase's optimizer minimises.
        Only the phase's own module is updated from it; gradients the loss leaves in other modules are dropped."""
        ...


class PhasedModules(nn.Module):
    """The model and the modules trained beside it, as one module whose forward is one phase of the step:
    what Accelerate prepares. Its state dict holds ``model.*`` and ``aux.<name>.*``."""

    def __init__(self, model: nn.Module, step: PhasedStep) -> None:
        super().__init__()
        self.model = model
        self.aux = nn.ModuleDict(step.modules())
        if MODEL in self.aux:
            raise UsageError(f"a step function's trained modules may not be named {MODEL!r}")
        self._step = (step,)  # a tuple, so that a step function that is an nn.Module is not registered twice

    def forward(self, batch: Mapping[str, torch.Tensor], phase: str, carry: dict[str, Any]) -> Mapping[str, Any]:
        aux = cast(Mapping[str, nn.Module], self.aux)  # an nn.ModuleDict: a mapping of names to modules
        return self._step[0].phase(self.model, aux, batch, phase, carry)

    def group(self, name: str) -> nn.Module:
        """The module phase ``name`` updates."""
        return self.model if name == MODEL else self.aux[name]


def update_order(step: PhasedStep, cfg: TrainConfig) -> tuple[str, ...]:
    """``train.update_order`` if set (a reordering of the step's phases), else the step's own order."""
    own = tuple(step.phases)
    names = {MODEL, *step.modules()}
    unknown = sorted(set(own) - names)
    if unknown or len(set(own)) != len(own):
        raise UsageError(f"the step function's phases {own} must name each of {sorted(names)} at most once")
    if not cfg.update_order:
        return own
    given = tuple(cfg.update_order)
    if sorted(given) != sorted(own):
        raise UsageError(f"train.update_order={list(given)} must list this run's phases {list(own)} once each, in "
                         "the order their optimizers step")
    return given


def group_config(cfg: TrainConfig, name: str) -> TrainConfig:
    """The train settings of module ``name``'s optimizer: ``train.groups.<name>`` over the ``train`` values."""
    group = cfg.groups.get(name) if name != MODEL else None
    if group is None:
        return cfg
    given = {f.name: getattr(group, f.name) for f in dataclasses.fields(group) if getattr(group, f.name) is not None}
    return dataclasses.replace(cfg, **given)


def phase_entries(out: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """A phase's entries as logged: ``loss`` and ``grad_norm`` carry the phase's name unless it is the model's."""
    if name == MODEL:
        return dict(out)
    return {(f"{k}/{name}" if k in ("loss", "grad_norm") else k): v for k, v in out.items()}


class WeightEMA:
    """An exponential moving average of a module's state (floating tensors averaged, the rest copied), with the
    usual warm-up ``decay_t = min(decay, (1 + t) / (10 + t))`` so that early weights do not linger."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise UsageError(f"train.ema={decay} must be in (0, 1), e.g. 0.999, or 0 to switch it off")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.floats = [k for k, v in self.shadow.items() if v.is_floating_point()]  # averaged
        self.others = [k for k, v in self.shadow.items() if not v.is_floating_point()]  # copied (step counters)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Move the average toward ``module``'s current state (``step``: optimizer steps taken so far)."""
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        state = module.state_dict()
        if self.floats:
            torch._foreach_lerp_([self.shadow[k] for k in self.floats], [state[k] for k in self.floats], weight)
        for k in self.others:
            self.shadow[k].copy_(state[k])

    def load(self, tensors: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            raise UsageError(f"the saved weight average lacks {len(missing)} tensors (e.g. {missing[0]})")
        for k, v in self.shadow.items():
            v.copy_(tensors[k])
