"""Estimator lab: small experiments whose answers are known exactly (mixture-of-Gaussians maximum
likelihood, importance sampling of log p(x), score-function vs pathwise gradients). Each module holds pure
functions returning result dataclasses and a ``plot``; ``registry`` names them for ``audiolvm lab``."""

from audiolvm.lab.registry import EXPERIMENTS, Experiment, LabResult, register, run_experiment

__all__ = ["EXPERIMENTS", "Experiment", "LabResult", "register", "run_experiment"]
