"""Run under a 2-process launcher: train a tiny VQ-VAE with the Trainer, save each rank's state.

Usage: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 tests/dist_worker.py OUT [--no-allreduce]
       [--pitch [--hpn]]

``--pitch`` trains a pitch-aware model (NSF excitation, F0 predictor; with ``--hpn`` the harmonic-plus-noise
decoder) on data with F0 instead; ``--adv`` trains
adversarially (discriminators with their own optimizer, a step in two phases) and saves their weights too.

``--no-allreduce`` disables the VQ's all-reduce of EMA statistics, to show that the test's property
(identical codebooks on every rank) then fails: nothing else keeps the ranks in step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiolvm.config import TrainConfig  # noqa: E402
from audiolvm.core.distributed import rank, world_size  # noqa: E402
from audiolvm.engine import Trainer  # noqa: E402
from tests.helpers import (  # noqa: E402
    PitchSineDataset,
    SineDataset,
    tiny_adversarial,
    tiny_objective,
    tiny_pitch_model,
    tiny_vqvae,
)


def main(out: Path, pitch: bool = False, adv: bool = False, synth: str = "nsf") -> None:
    torch.manual_seed(0)
    model = tiny_pitch_model(synth=synth) if pitch else tiny_vqvae(num_codes=32, dead_threshold=1.5)
    objective = tiny_adversarial(start_step=1) if adv else tiny_objective(pitch=pitch)
    cfg = TrainConfig(
        out_dir=str(out / "run"),
        max_steps=5,
        lr=3e-3,
        warmup_steps=1,
        log_every=1,
        valid_every=100,
        ckpt_every=100,
        tensorboard=False,
        progress=False,
        seed=0,
    )
    initial = {k: v.detach().clone() for k, v in objective.disc.state_dict().items()} if adv else {}
    data = PitchSineDataset(n=16, seed=3) if pitch else SineDataset(n=16, seed=3)
    trainer = Trainer(model, objective, data, cfg, batch_size=4)
    trainer.fit()
    unwrapped = trainer.unwrapped_model()
    vq = unwrapped.levels[0].bottleneck if pitch else unwrapped.bottleneck
    state = {
        "world_size": torch.tensor(world_size()),
        "codebook": vq.codebook.clone(),
        "ema_count": vq.ema_count.clone(),
        "first_param": next(unwrapped.parameters()).detach().clone(),
        "params": {k: v.detach().clone() for k, v in unwrapped.state_dict().items()},
    }
    if adv:
        state["disc"] = {k: v.detach().clone() for k, v in objective.disc.state_dict().items()}
        state["disc_initial"] = initial
    torch.save(state, out / f"rank{rank()}.pt")


if __name__ == "__main__":
    if "--no-allreduce" in sys.argv:
        import audiolvm.bottleneck.vq as vq_module

        vq_module.all_reduce_sum_ = lambda t: t
    main(Path(sys.argv[1]), pitch="--pitch" in sys.argv, adv="--adv" in sys.argv,
         synth="hpn" if "--hpn" in sys.argv else "nsf")
