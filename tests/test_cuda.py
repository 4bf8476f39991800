"""Properties that only a GPU can show; skipped without CUDA. ``make gpu-check`` runs them first.

* training steps between sync points make no host-device synchronisation (``set_sync_debug_mode("error")``);
* the VQ-VAE's forward/backward on the GPU matches the CPU's;
* KV-cached sampling equals recomputed sampling on the GPU;
* a bf16-autocast training run stays finite.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from audiolvm.bottleneck import VectorQuantizerEMA
from audiolvm.config import TrainConfig
from audiolvm.engine import Trainer
from tests.helpers import SineDataset, tiny_objective, tiny_vqvae

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _allow_syncs(fn):  # noqa: ANN001, ANN202
    """Run ``fn`` with the sync check off (the sync points themselves), then turn it back on."""

    @functools.wraps(fn)
    def inner(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        torch.cuda.set_sync_debug_mode(0)
        try:
            return fn(*args, **kw)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    return inner


def test_training_steps_make_no_host_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any synchronising call (``.item()``, ``bool(tensor)``, a blocking copy) between two sync points raises.
    Allowed: the flush and logging/checkpointing at a sync point, and the VQ's one-off codebook initialisation."""
    for owner, name in ((Trainer, "_flush"), (Trainer, "_periodic"), (VectorQuantizerEMA, "_is_initialized"),
                        (VectorQuantizerEMA, "_initialize")):
        monkeypatch.setattr(owner, name, _allow_syncs(getattr(owner, name)))
    torch.manual_seed(0)
    cfg = TrainConfig(out_dir=str(tmp_path), max_steps=24, lr=1e-3, warmup_steps=2, log_every=12, valid_every=10**6,
                      ckpt_every=10**6, tensorboard=False, progress=False)
    trainer = Trainer(tiny_vqvae(dead_threshold=1.5), tiny_objective(), SineDataset(n=64, seed=1), cfg, batch_size=4)
    assert trainer.accelerator.device.type == "cuda"
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.fit()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert trainer.state.step == 24 and trainer.state.skipped_steps == 0


def test_vqvae_step_matches_the_cpu() -> None:
    torch.manual_seed(0)
    cpu = tiny_vqvae().train()
    gpu = tiny_vqvae().train()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    x = SineDataset(n=4, seed=2)[0]["audio"][None].repeat(4, 1, 1)  # (4, 1, T)
    objective = tiny_objective()
    out_cpu, out_gpu = objective(cpu, {"audio": x}), objective(gpu, {"audio": x.cuda()})
    out_cpu["loss"].backward()
    out_gpu["loss"].backward()
    assert torch.allclose(out_cpu["loss"], out_gpu["loss"].cpu(), rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad.cpu(), rtol=1e-3, atol=1e-5), name


def test_cached_sampling_equals_recomputed_on_the_gpu() -> None:
    from audiolvm.models.priors import CausalTransformerPrior

    torch.manual_seed(0)
    prior = CausalTransformerPrior(64, context=16, dim=64, layers=2, heads=4).cuda().eval()  # windows slide
    draws = []
    for use_cache in (True, False):
        torch.manual_seed(1)
        draws.append(prior.sample(3, 40, progress=False, use_cache=use_cache))
    assert torch.equal(draws[0], draws[1])


def test_bf16_training_stays_finite(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(out_dir=str(tmp_path), max_steps=8, lr=1e-3, warmup_steps=2, log_every=4, ckpt_every=8,
                      mixed_precision="bf16", tensorboard=False, progress=False)
    trainer = Trainer(tiny_vqvae(), tiny_objective(), SineDataset(n=32, seed=1), cfg, batch_size=4)
    result = trainer.fit()
    assert result.state.skipped_steps == 0 and all(torch.isfinite(p).all() for p in trainer.model.parameters())
