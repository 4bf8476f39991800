"""The Accelerate trainer, checkpoints, resume, logging and progress. Imports no model code."""

from audiolvm.engine.optim import lr_multiplier
from audiolvm.engine.state import TrainerState, TrainingDiverged
from audiolvm.engine.trainer import FitResult, Trainer

__all__ = ["FitResult", "Trainer", "TrainerState", "TrainingDiverged", "lr_multiplier"]
