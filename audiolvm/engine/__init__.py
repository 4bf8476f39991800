"""The Accelerate trainer, checkpoints, resume, logging and progress. Imports no model code."""

from audiolvm.engine.trainer import FitResult, Trainer, TrainerState, TrainingDiverged, lr_multiplier

__all__ = ["FitResult", "Trainer", "TrainerState", "TrainingDiverged", "lr_multiplier"]
