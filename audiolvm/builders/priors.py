"""Priors over codes: config names to priors, their training data and objective, and the sampling chain of
a VQ-VAE run and prior runs."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from audiolvm.builders.audio import load_model
from audiolvm.builders.runs import load_run, resolve_checkpoint
from audiolvm.config import ConfigError, ExperimentConfig, PriorConfig, PriorExperimentConfig
from audiolvm.core.errors import UsageError
from audiolvm.core.files import read_json
from audiolvm.data.codes import CodeStore, CodeWindowDataset
from audiolvm.models import MultiLevelAutoencoder
from audiolvm.models.chain import ChainStage, SamplingChain
from audiolvm.models.priors import CausalTransformerPrior, GatedPixelCNN1d, GatedPixelCNN2d, Prior, UpsamplerPrior
from audiolvm.models.priors.objective import PriorObjective

PRIOR_KINDS = ("transformer", "upsampler", "pixelcnn1d", "pixelcnn2d")
CODES_JSON_FIX = "encode the codes again with 'audiolvm encode'"


def resolve_prior_config(cfg: PriorExperimentConfig, store: CodeStore) -> PriorExperimentConfig:
    """Fill the prior's codebook size, labels and hop ratio from the code folder it trains on."""
    codes, prior = cfg.codes, cfg.prior
    levels = len(store.levels)
    if not 0 <= codes.level < levels:
        raise ConfigError(f"codes.level={codes.level}: {store.root} has levels 0..{levels - 1}")
    if prior.kind not in PRIOR_KINDS:
        raise ConfigError(f"prior.kind={prior.kind!r} is unknown; use one of {PRIOR_KINDS}")
    if prior.kind == "pixelcnn2d":
        raise ConfigError("prior.kind=pixelcnn2d models 2-D code maps of an image VQ-VAE; audio codes are 1-D "
                          "(use transformer or pixelcnn1d), and image priors train with 'audiolvm train-image-prior'")
    if (prior.kind == "upsampler") != (codes.upper_level is not None):
        raise ConfigError("prior.kind=upsampler needs codes.upper_level (the level above), and only it does")
    upsample, upper_k = 1, 0
    if codes.upper_level is not None:
        if not codes.level < codes.upper_level < levels:
            raise ConfigError(f"codes.upper_level={codes.upper_level} must be above codes.level={codes.level}")
        upsample = store.levels[codes.upper_level].hop // store.levels[codes.level].hop
        upper_k = store.levels[codes.upper_level].num_codes
    labels = sorted({it.speaker for it in store.items}) if prior.use_labels else []
    prior = dataclasses.replace(prior, num_codes=store.levels[codes.level].num_codes, labels=labels,
                                upsample=upsample, upper_num_codes=upper_k)
    return dataclasses.replace(cfg, prior=prior)


def build_prior(cfg: PriorConfig) -> Prior:
    """A prior from a resolved config (``num_codes`` etc. filled by :func:`resolve_prior_config`)."""
    common = {"num_codes": cfg.num_codes, "num_labels": len(cfg.labels)}
    if cfg.num_codes < 1:
        raise ConfigError("prior.num_codes is 0: resolve the config against a code folder first")
    if cfg.kind == "transformer":
        return CausalTransformerPrior(context=cfg.context, dim=cfg.dim, layers=cfg.layers, heads=cfg.heads,
                                      dropout=cfg.dropout, **common)
    if cfg.kind == "upsampler":
        return UpsamplerPrior(num_upper_codes=cfg.upper_num_codes, upsample=cfg.upsample, context=cfg.context,
                              dim=cfg.dim, layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout, **common)
    if cfg.kind == "pixelcnn1d":
        return GatedPixelCNN1d(channels=cfg.dim, layers=cfg.layers, kernel_size=cfg.kernel_size, **common)
    if cfg.kind == "pixelcnn2d":
        return GatedPixelCNN2d(channels=cfg.dim, layers=cfg.layers, kernel_size=cfg.kernel_size, **common)
    raise ConfigError(f"prior.kind={cfg.kind!r} is unknown; use one of {PRIOR_KINDS}")


def build_prior_datasets(cfg: PriorExperimentConfig) -> tuple[PriorExperimentConfig, CodeWindowDataset,
                                                                CodeWindowDataset]:
    """``(resolved config, train windows, valid windows)`` of the code folder ``codes.root``: the config filled
    from the codes (:func:`resolve_prior_config`), then windows of ``codes.train_split`` and ``codes.valid_split``."""
    store = CodeStore(cfg.codes.root)
    cfg = resolve_prior_config(cfg, store)
    c = cfg.codes
    train, valid = (CodeWindowDataset(store, c.level, c.window, split, cfg.train.seed, c.upper_level,
                                      cfg.prior.labels or None) for split in (c.train_split, c.valid_split))
    return cfg, train, valid


def build_prior_objective(cfg: PriorConfig) -> PriorObjective:
    """The step function of a resolved prior: conditioned on labels when it has any, and on the level above for an
    upsampler (which :func:`resolve_prior_config` allows only with ``codes.upper_level``)."""
    return PriorObjective(bool(cfg.labels), cfg.kind == "upsampler")


def load_prior(path: str | Path) -> tuple[Prior, PriorExperimentConfig]:
    """Rebuild a trained prior from its run folder (config.json + model.safetensors), eval mode."""
    return load_run(path, PriorExperimentConfig, lambda cfg: build_prior(cfg.prior), "prior")


def chain_stage(prior: Prior, cfg: PriorExperimentConfig) -> ChainStage:
    """A loaded prior as a stage of a :class:`SamplingChain`."""
    return ChainStage(prior, cfg.codes.level, cfg.codes.upper_level, cfg.prior.labels)


def check_code_levels(model: MultiLevelAutoencoder, levels: list[tuple[int, int]], what: str, fix: str) -> None:
    """Codes with ``(hop, K)`` per level ``levels`` can be decoded by ``model`` only if its levels are the same."""
    ours = [(lv.hop, lv.bottleneck.num_codes) for lv in model.levels]
    if levels != ours:
        raise UsageError(f"{what}: (hop, K) per level {levels}, the VQ-VAE's {ours}; {fix}")


def check_prior_matches(prior_run: str | Path, cfg: PriorExperimentConfig, vqvae: str | Path,
                        model: MultiLevelAutoencoder) -> None:
    """Refuse a prior trained on another VQ-VAE's codes: the code folder it trained on (when still there)
    must have this model's hop and codebook size per level and have been encoded by these very weights."""
    meta_path = Path(cfg.codes.root) / "meta.json"
    if not meta_path.is_file():
        return  # the codes are gone: the chain still checks the codebook size of the modelled level
    meta = read_json(meta_path, CODES_JSON_FIX)
    check_code_levels(model, [(lv["hop"], lv["num_codes"]) for lv in meta.get("levels", [])],
                      f"prior {prior_run} trained on codes of {meta_path}",
                      f"sample through the VQ-VAE that wrote them, not {vqvae}")
    encoded_by = Path(meta.get("checkpoint", ""))
    weights = resolve_checkpoint(vqvae)[0]
    if encoded_by.is_file() and encoded_by.resolve() != weights.resolve() and not _same_file(encoded_by, weights):
        raise UsageError(f"prior {prior_run} trained on codes of {encoded_by} ({meta_path}), not of {weights}: the "
                         "codebooks differ, so its codes would decode to noise; pass that VQ-VAE with --vqvae")


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def load_chain(vqvae: str | Path, priors: list[str | Path]) -> tuple[SamplingChain, ExperimentConfig]:
    """The sampling chain of a VQ-VAE run and prior runs listed top-down (top prior, then upsamplers)."""
    model, cfg = load_model(vqvae)
    return SamplingChain(model, load_stages(vqvae, model, priors), cfg.data.sample_rate), cfg


def load_stages(vqvae: str | Path, model: MultiLevelAutoencoder, priors: list[str | Path]) -> list[ChainStage]:
    """Prior runs (top-down) as chain stages, each checked against the VQ-VAE (:func:`check_prior_matches`)."""
    stages = []
    for run in priors:
        prior, pcfg = load_prior(run)
        check_prior_matches(run, pcfg, vqvae, model)
        stages.append(chain_stage(prior, pcfg))
    return stages
