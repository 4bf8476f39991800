"""One optimisation step on the prepared modules: each micro-batch forward and backward inside Accelerate's
accumulation context, the window's non-finite flag kept on the device, then clip, step (skipped on that flag),
schedule and zero each optimizer; a step in phases runs one such update per trained module. Also the step
function's entries for a held-out batch (validation)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any, cast

import torch
from accelerate import Accelerator
from torch import nn

from audiolvm.core.distributed import all_true_tensor
from audiolvm.engine.optim import OptimGroup
from audiolvm.engine.phases import MODEL, PhasedModules, WeightEMA, phase_entries

StepFn = Callable[[nn.Module, Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


def trained_modules(accelerator: Accelerator, model: nn.Module) -> nn.Module:
    """Everything a run trains and checkpoints (``model`` as prepared, unwrapped): the model, or
    :class:`PhasedModules` around it."""
    return accelerator.unwrap_model(model)


def bare_model(trained: nn.Module) -> nn.Module:
    """The model of ``trained`` (without the modules trained beside it)."""
    return trained.model if isinstance(trained, PhasedModules) else trained


class Stepper:
    """Runs the micro-steps of the prepared ``model`` (the model, or :class:`PhasedModules` around it when
    ``phased``) with ``step_fn`` and updates each of ``groups`` (and the weight average ``ema``, if any)."""

    def __init__(self, accelerator: Accelerator, model: nn.Module, step_fn: StepFn, phased: bool,
                 groups: list[OptimGroup], ema: WeightEMA | None) -> None:
        self.accelerator, self.model, self.step_fn, self.phased = accelerator, model, step_fn, phased
        self.groups, self.ema = groups, ema

    def micro_step(self, batch: Mapping[str, torch.Tensor], window: dict[str, Any],
                   step: int) -> dict[str, torch.Tensor]:
        """Forward/backward one micro-batch inside the accumulation context (``step``: optimizer steps taken so
        far). Returns the step function's entries plus ``"ok"``: a 0-dim device tensor, 1 when every loss of the
        accumulation window was finite on every process. A window that is not ok makes no update: a fused
        optimizer skips it on the device flag itself (``found_inf``, no host sync); any other optimizer reads the
        flag (one sync). It still counts as a step (as a step skipped by AMP's gradient scaler does), and the
        scheduler moves on."""
        acc = self.accelerator
        if self.phased:
            return self._phased_step(batch, window, step)
        with acc.accumulate(self.model):
            out = dict(self.step_fn(self.model, batch))
            window["ok"] = self._backward(out["loss"], window.get("ok"))
            if acc.sync_gradients:
                out |= self._update(self.groups[0], self.model.parameters(), window["ok"], step)
            out["ok"] = window["ok"]
        return out

    def _backward(self, loss: torch.Tensor, ok: torch.Tensor | None) -> torch.Tensor:
        """Backward ``loss``; returns ``ok`` and-ed with "the loss is finite on every process" (a device tensor).
        A non-finite loss poisons the window's gradients, and the update is skipped."""
        finite = all_true_tensor(torch.isfinite(loss.detach()).all())
        self.accelerator.backward(loss)
        return finite if ok is None else ok & finite

    def _update(self, group: OptimGroup, params: Iterable[nn.Parameter], ok: torch.Tensor,
                step: int) -> dict[str, torch.Tensor]:
        """Clip, step (skipped when not ``ok``), schedule and zero one optimizer; returns ``grad_norm`` if clipped."""
        out = {}
        if group.cfg.grad_clip > 0:
            out["grad_norm"] = self.accelerator.clip_grad_norm_(params, group.cfg.grad_clip)
        if group.skip_on_device:
            group.inner.found_inf = (~ok).float()  # type: ignore[attr-defined]  # read by the fused kernel
            group.optimizer.step()
        elif bool(ok):
            group.optimizer.step()
        group.scheduler.step()
        group.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None and group.name == MODEL:
            self.ema.update(bare_model(trained_modules(self.accelerator, self.model)), step)
        return out

    def _freeze_others(self, trained: nn.Module, phase: str) -> list[nn.Parameter]:
        """In a one-process run, switch gradients off for the other trained modules (not the model, whose graph a
        phase may build for the next one) during ``phase``, so that backward skips weight gradients that would be
        dropped (the discriminators' in the model phase); returns the parameters to switch back on. Under DDP the
        set of parameters with gradients is fixed when it wraps the module, so nothing is frozen there."""
        if self.accelerator.num_processes > 1 or not isinstance(trained, PhasedModules):
            return []
        frozen = [p for name, module in trained.aux.items() if name != phase for p in module.parameters()
                  if p.requires_grad]
        for param in frozen:
            param.requires_grad_(False)
        return frozen

    def _phased_step(self, batch: Mapping[str, torch.Tensor], window: dict[str, Any],
                     step: int) -> dict[str, torch.Tensor]:
        """A step in phases (:class:`~audiolvm.engine.phases.PhasedStep`). The window's micro-batches are held
        until the last arrives; then each phase in update order runs every micro-batch forward and backward (each
        with its own ``carry``, kept across the phases, so the window's graphs are held) and steps its module's
        optimizer. Gradients a phase leaves in other modules are cleared before the next phase. Each phase's update
        is skipped on its own non-finite flag; the step's ``ok`` is all of them."""
        acc = self.accelerator
        with acc.accumulate(self.model):
            window.setdefault("batches", []).append(batch)
            if not acc.sync_gradients:
                return {}
            batches = window.pop("batches")
            carries: list[dict] = [{} for _ in batches]
            out: dict[str, torch.Tensor] = {}
            step_ok: torch.Tensor | None = None
            trained = cast(PhasedModules, trained_modules(acc, self.model))
            for group in self.groups:
                trained.zero_grad(set_to_none=True)
                ok: torch.Tensor | None = None
                frozen = self._freeze_others(trained, group.name)
                try:
                    for j, (micro, carry) in enumerate(zip(batches, carries, strict=True)):
                        # DDP all-reduces at the window's last backward only
                        with acc.no_sync(self.model) if j < len(batches) - 1 else nullcontext():
                            entries = dict(self.model(micro, phase=group.name, carry=carry))
                            ok = self._backward(entries["loss"], ok)
                finally:
                    for param in frozen:
                        param.requires_grad_(True)
                assert ok is not None  # a window holds at least one micro-batch
                entries |= self._update(group, trained.group(group.name).parameters(), ok, step)
                out |= phase_entries(entries, group.name)
                step_ok = ok if step_ok is None else step_ok & ok
            trained.zero_grad(set_to_none=True)
            assert step_ok is not None  # there is at least one group, the model's
            out["ok"] = step_ok
        return out

    def evaluate(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The step function's entries for a held-out batch (every phase, in update order, for a phased step)."""
        if not self.phased:
            return dict(self.step_fn(self.model, batch))
        out: dict[str, torch.Tensor] = {}
        carry: dict[str, Any] = {}
        for group in self.groups:
            out |= phase_entries(self.model(batch, phase=group.name, carry=carry), group.name)
        return out
