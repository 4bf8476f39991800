"""Any run folder, loaded by the loader of the kind its ``config.json`` records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from audiolvm.builders.audio import load_classifier, load_model
from audiolvm.builders.image import load_image_model, load_image_prior
from audiolvm.builders.priors import load_prior
from audiolvm.builders.runs import run_kind

#: the loader of each run kind (:data:`audiolvm.config.RUN_KINDS`): ``path -> (module in eval mode, config)``
RUN_LOADERS: dict[str, Callable[[str | Path], tuple[nn.Module, Any]]] = {
    "audio": load_model, "prior": load_prior, "classifier": load_classifier, "image": load_image_model,
    "image_prior": load_image_prior,
}


def load_any_run(path: str | Path) -> tuple[str, nn.Module, Any]:
    """``(run kind, module in eval mode, config)`` of any run folder, loaded by the loader of its kind
    (:func:`run_kind`)."""
    kind = run_kind(path)
    module, cfg = RUN_LOADERS[kind](path)
    return kind, module, cfg
