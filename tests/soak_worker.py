"""Train a tiny VQ-VAE with ``--resume`` semantics, for the kill-and-resume soak test.

Usage: python tests/soak_worker.py OUT MAX_STEPS [DIE]

The learning rate is constant after warm-up, so MAX_STEPS only says where training stops: runs with different
MAX_STEPS follow the same trajectory. Prints ``ready`` once the trainer is built (so a parent can kill it at a
random moment of training), then trains to MAX_STEPS, resuming from OUT's newest checkpoint if there is one.
``DIE`` makes the process SIGKILL itself inside the checkpoint window of its first checkpoint (``DIE@final``:
of the checkpoint at MAX_STEPS):

* ``export``: the weights are exported, the checkpoint folder is not yet published;
* ``publish``: the checkpoint is published, old ones are not yet rotated away;
* ``rotate``: rotation is done, the other ranks have not yet passed the barrier.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiolvm.config import TrainConfig  # noqa: E402
from audiolvm.engine import Trainer  # noqa: E402
from audiolvm.engine import checkpoint as ckpt  # noqa: E402
from tests.helpers import SineDataset, tiny_objective, tiny_vqvae  # noqa: E402

HOOKS = {"export": "save_weights", "publish": "publish_dir", "rotate": "rotate"}


def die_after(name: str, when: str, max_steps: int) -> None:
    """Wrap ``ckpt.<name>`` so that the process is killed right after it runs (once the condition holds)."""
    original = getattr(ckpt, name)

    def wrapped(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        result = original(*args, **kw)
        if when != "final" or TRAINER.state.step == max_steps:  # the step of the checkpoint being written
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(ckpt, name, wrapped)


def main(out: Path, max_steps: int, die: str | None) -> None:
    global TRAINER
    torch.manual_seed(0)
    cfg = TrainConfig(out_dir=str(out), max_steps=max_steps, lr=3e-3, warmup_steps=2, log_every=1, valid_every=10**6,
                      ckpt_every=3, keep_last=2, tensorboard=False, progress=False, seed=0,
                      schedule="constant")
    TRAINER = Trainer(tiny_vqvae(num_codes=32), tiny_objective(), SineDataset(n=16, seed=3), cfg, batch_size=4)
    if die:
        hook, _, when = die.partition("@")
        die_after(HOOKS[hook], when, max_steps)
    print("ready", flush=True)
    TRAINER.fit(resume=True)


TRAINER: Trainer
if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
