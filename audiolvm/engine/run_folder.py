"""What the trainer writes to and reads from its run folder: checkpoints (saved atomically and rotated, resumed
from the newest that loads), the exported weights that inference loads, and warm starts (``train.init_from``).
The file format itself is :mod:`audiolvm.engine.checkpoint`'s."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_json, read_json
from audiolvm.engine import checkpoint as ckpt
from audiolvm.engine.phases import MODEL, PhasedModules, WeightEMA
from audiolvm.engine.state import TrainerState
from audiolvm.engine.steps import bare_model, trained_modules

log = logging.getLogger("audiolvm.engine")
EMA_FILE = "ema.safetensors"  #: a checkpoint's weight average (train.ema)


class RunFolder:
    """The run folder ``out_dir`` of the prepared ``model`` (its checkpoints under ``out_dir/checkpoints``, the
    newest ``keep_last`` kept besides the last good one), with the weight average ``ema`` if there is one.

    Args:
        run_config: the resolved experiment config, saved beside every checkpoint and the export.
    """

    def __init__(self, accelerator: Accelerator, model: nn.Module, ema: WeightEMA | None, out_dir: Path,
                 run_config: dict | None, keep_last: int) -> None:
        self.accelerator, self.model, self.ema = accelerator, model, ema
        self.out_dir, self.run_config, self.keep_last = out_dir, run_config, keep_last
        self.ckpt_root = out_dir / "checkpoints"

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def trained_modules(self) -> nn.Module:
        """Everything this run trains and checkpoints: the model, or :class:`PhasedModules` around it."""
        return trained_modules(self.accelerator, self.model)

    def unwrapped_model(self) -> nn.Module:
        """The model (without the modules trained beside it)."""
        return bare_model(self.trained_modules())

    # ----------------------------------------------------------------------------------------
    def save(self, state: TrainerState) -> Path:
        """Write the full training state of ``state.step`` atomically, rotate old ones, export safetensors weights.
        Sets ``state.pending`` (the checkpoint is judged by the next loss) when its weights are finite."""
        acc, final = self.accelerator, ckpt.step_dir(self.ckpt_root, state.step)
        tmp = final.with_name(f".{final.name}.tmp")
        if self.is_main:
            self.ckpt_root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        params = list(self.trained_modules().parameters())
        finite = bool(torch.stack([torch.isfinite(p).all() for p in params]).all()) if params else True
        state.pending = state.step if finite else -1  # judged by the next loss (state.judge_checkpoint)
        if self.is_main:
            if self.ema is not None:
                ckpt.save_weights(self.ema.shadow, tmp / EMA_FILE, state.step)
            atomic_write_json(tmp / "trainer_state.json", dataclasses.asdict(state))
            if self.run_config is not None:
                atomic_write_json(tmp / "config.json", self.run_config)
            # the export comes first: a checkpoint that claims step N is never published beside older weights
            self.export(state.step)
            ckpt.publish_dir(tmp, final)
            ckpt.rotate(self.ckpt_root, self.keep_last, keep=state.last_good)
        acc.wait_for_everyone()
        return final

    def export(self, step: int) -> Path:
        """Write ``<out>/config.json`` and ``<out>/model.safetensors`` (the weights of the current step, which
        its metadata names; their moving average with ``train.ema``): what inference loads. Modules trained beside
        the model go beside it, ``<out>/<name>.safetensors`` (a discriminator, for fine-tuning later with
        ``train.init_from``); the model's file is written last. Main process only."""
        if self.run_config is not None:
            atomic_write_json(self.out_dir / "config.json", self.run_config)
        trained = self.trained_modules()
        if isinstance(trained, PhasedModules):
            for name, module in trained.aux.items():
                ckpt.save_weights(module.state_dict(), self.out_dir / f"{name}.safetensors", step)
        weights = self.ema.shadow if self.ema is not None else self.unwrapped_model().state_dict()
        return ckpt.save_weights(weights, self.out_dir / "model.safetensors", step)

    def refresh_export(self, step: int) -> None:
        """After a resume to ``step``: if the exported weights are missing, unreadable or from another step than the
        checkpoint (a run killed between checkpoint and export), export the checkpoint's weights again."""
        path = self.out_dir / "model.safetensors"
        found = ckpt.exported_step(path)
        if self.is_main and found != step:
            what = "missing or unreadable" if found is None else f"from step {found}"
            log.warning("%s is %s; re-exporting the weights of the resumed checkpoint (step %d)", path, what, step)
            self.export(step)
        self.accelerator.wait_for_everyone()

    def good_checkpoint(self, last_good: int) -> Path | None:
        """The checkpoint of step ``last_good`` (the newest confirmed good; -1: none), if it is still on disk."""
        path = ckpt.step_dir(self.ckpt_root, last_good) if last_good >= 0 else None
        return path if path is not None and path.is_dir() else None

    def remove_after(self, step: int) -> None:
        """Delete the checkpoints newer than ``step`` (a diverged stretch). Main process only."""
        for path in ckpt.list_checkpoints(self.ckpt_root):
            if int(ckpt.STEP_DIR.match(path.name).group(1)) > step:  # type: ignore[union-attr]
                shutil.rmtree(path, ignore_errors=True)

    # ----------------------------------------------------------------------------------------
    def resume(self, path: str | Path | None = None) -> tuple[Path, TrainerState] | None:
        """Load the given checkpoint, or else the newest one that loads; returns its folder and trainer state (None:
        none exists).

        A checkpoint that fails to load (a truncated weights or optimizer file, a corrupt trainer_state.json) is
        skipped for the previous one, and both are named. One whose weights do not fit the model (the model
        config changed since) stops the run with the config differences: an older checkpoint would not fit
        either.
        """
        candidates = [Path(path)] if path else ckpt.list_checkpoints(self.ckpt_root)[::-1]
        failed: list[str] = []
        for folder in candidates:
            self._check_fits(folder)
            try:
                state = self._load(folder)
            except Exception as exc:  # noqa: BLE001 - whatever part is unreadable, the checkpoint is unusable
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                failed.append(f"{folder.name} ({reason})")
                log.warning("%s cannot be loaded (%s); trying the checkpoint before it", folder, reason)
                continue
            if failed:
                log.warning("resumed from %s instead of the newer %s", folder.name,
                            ", ".join(f.split(" (")[0] for f in failed))
            return folder, state
        if failed:
            raise UsageError(f"{self.ckpt_root}: no checkpoint loads ({'; '.join(failed)}); train without --resume "
                             "into a new train.out_dir")
        return None

    def _load(self, folder: Path) -> TrainerState:
        state_file = folder / "trainer_state.json"
        if not state_file.is_file():
            raise MissingFileError(f"{folder}: not a checkpoint folder (no trainer_state.json)")
        raw = read_json(state_file)
        try:
            state = TrainerState(**raw)
        except TypeError as exc:
            raise UsageError(f"{state_file}: not a trainer state ({exc})") from exc
        self.accelerator.load_state(str(folder))
        if self.ema is not None:
            if (folder / EMA_FILE).is_file():
                self.ema.load(ckpt.load_weights(folder / EMA_FILE))
            else:  # a checkpoint of a run without train.ema: the average starts from its weights
                log.warning("%s has no %s; the weight average (train.ema) starts from its weights", folder, EMA_FILE)
                self.ema.load(self.unwrapped_model().state_dict())
        return state

    def _check_fits(self, folder: Path) -> None:
        """Raise ValueError if the checkpoint's weights have other shapes than the model's (a changed config)."""
        weights = folder / "model.safetensors"
        try:
            wrong = ckpt.shape_mismatches(ckpt.tensor_shapes(weights), self.trained_modules())
        except (ValueError, OSError):
            return  # missing or unreadable: loading fails and the checkpoint is skipped
        if not wrong:
            return
        changed = []
        if self.run_config is not None and (folder / "config.json").is_file():
            try:
                changed = [d for d in ckpt.config_differences(read_json(folder / "config.json"), self.run_config)
                           if not d.startswith("train.")]
            except ValueError:
                pass
        why = f"; the config differs in {', '.join(changed[:4])}" if changed else ""
        raise UsageError(f"{folder}: {len(wrong)} tensors of the checkpoint do not fit the model built now (e.g. "
                         f"{wrong[0]}){why}. Resume with the run's config ({folder / 'config.json'}), or train the new "
                         "model into another train.out_dir")

    def init_from(self, run: str | Path) -> None:
        """Warm start (``train.init_from``): load a run's ``model.safetensors`` into the model, strictly (every
        tensor present, same shapes), and the saved weights of each module trained beside it where the run has
        them (``<name>.safetensors``); a module without a file starts fresh."""
        run = Path(run)
        weights = run / "model.safetensors" if run.is_dir() else run
        fix = (f"give train.init_from a run folder written by 'audiolvm train' for the same model config "
               f"(it has {run / 'config.json'})")
        if not weights.is_file():
            raise UsageError(f"train.init_from={str(run)!r}: {weights} not found; {fix}")
        targets: dict[str, tuple[nn.Module, Path]] = {MODEL: (self.unwrapped_model(), weights)}
        trained = self.trained_modules()
        if isinstance(trained, PhasedModules):
            targets |= {name: (m, weights.with_name(f"{name}.safetensors")) for name, m in trained.aux.items()}
        for name, (module, path) in targets.items():
            if name != MODEL and not path.is_file():
                log.info("init_from: %s has no %s; %s starts fresh", run, path.name, name)
                continue
            ckpt.load_strict(module, ckpt.load_weights(path), path, fix)
            log.info("init_from: %s loaded from %s", name, path)
        if self.ema is not None:
            self.ema.load(self.unwrapped_model().state_dict())
