"""Typed configuration schemas and YAML loading with includes and ``key=value`` overrides.

A YAML file may name a ``base:`` file (or a list of them), resolved relative to itself, that it
overrides; so ``configs/tiny/speech_vqvae.yaml`` holds only the few keys that differ from
``configs/speech_vqvae.yaml``. Unknown keys are errors that name the file, the key and the
closest valid key. This package imports nothing from the rest of ``audiolvm`` but ``core.errors``
(:class:`ConfigError` is one of the project's error types).

``common``: the error type, :class:`VQConfig` (both families' quantizer) and :class:`TrainConfig`;
``audio``, ``priors``, ``image``: each family's schemas; ``loading``: YAML, overrides, range checks and the
``config.json`` of a run (which records the run's ``kind``, :data:`RUN_KINDS`).
"""

from audiolvm.config.audio import (
    AdversarialConfig,
    ClassifierConfig,
    ClassifierExperimentConfig,
    DataConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    PitchConfig,
    SpeakerConfig,
    STFTLossConfig,
)
from audiolvm.config.common import ConfigError, OptimGroupConfig, TrainConfig, VQConfig, per_level
from audiolvm.config.image import (
    ImageDataConfig,
    ImageExperimentConfig,
    ImageLossConfig,
    ImageModelConfig,
    ImagePriorExperimentConfig,
    ScheduleConfig,
)
from audiolvm.config.loading import (
    KIND_KEY,
    RANGES,
    RUN_KINDS,
    check_ranges,
    config_from_dict,
    config_to_dict,
    load_config,
    schema_kind,
)
from audiolvm.config.priors import CodesDataConfig, PriorConfig, PriorExperimentConfig

__all__ = [
    "KIND_KEY",
    "RANGES",
    "RUN_KINDS",
    "AdversarialConfig",
    "ClassifierConfig",
    "ClassifierExperimentConfig",
    "CodesDataConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "ImageDataConfig",
    "ImageExperimentConfig",
    "ImageLossConfig",
    "ImageModelConfig",
    "ImagePriorExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "OptimGroupConfig",
    "PitchConfig",
    "PriorConfig",
    "PriorExperimentConfig",
    "STFTLossConfig",
    "ScheduleConfig",
    "SpeakerConfig",
    "TrainConfig",
    "VQConfig",
    "check_ranges",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "per_level",
    "schema_kind",
]
