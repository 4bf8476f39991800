"""Benchmark: audiolvm's VAE / IWAE against pythae's ``VAE`` / ``IWAE`` on binarized digits.

Same setup on both sides: scikit-learn digits binarized as ``x / 16 > 0.5`` (``digits_split(binarize="static")``,
the seeded 1297 / 500 split), MLP encoder 64-200-200-(2 x 8), Bernoulli decoder 8-200-200-64, batch 100,
Adam 1e-3, for VAE, IWAE k=5 and IWAE k=50. All models start from the *same* weights (ours are copied
into pythae's networks) and see the same batches in the same order. Training is an Adam loop: ours calls
``VAEObjective()(model, batch)["loss"]``, pythae calls ``model({"data": x}).loss`` (its trainer is not
used). Four setups of ours train beside pythae (``VARIANTS``): plain Adam as in the pythae loop, the
fused Adam kernel that ``audiolvm train-image`` uses, that plus ``train.mixed_precision=bf16`` (bf16
autocast on the model's forward; the bound stays float32), and that plus ``train.compile`` (the step
function under ``torch.compile``). Every step (zero_grad + forward + backward +
Adam step) is timed separately, all setups alternating step by step (the order flips every step) so
that all see the same CPU contention.

The test NLL uses *our* importance-sampled estimator (``audiolvm.eval.likelihood.estimate_nll``, K = 5000,
same seed) on both models through the same adapter (encoder -> mean / logvar, decoder -> Bernoulli logits),
so the estimator is identical.

pythae is not installed in the venv: its dependencies (pydantic 2, imageio, ...) live in a separate target
directory put on ``sys.path`` here only::

    .venv/bin/python -m pip install --no-deps --target /tmp/pythae_site pythae==0.1.2 pydantic==2.14.3 \\
        pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 imageio==2.38.1
    .venv/bin/python benchmarks/bench_pythae.py                 # 200 epochs, K = 5000
    .venv/bin/python benchmarks/bench_pythae.py --seeds 0,1,2    # as recorded in BENCHMARKS.md / RESULTS.md
    .venv/bin/python benchmarks/bench_pythae.py --epochs 5 --nll-samples 100   # smoke test
    .venv/bin/python benchmarks/bench_pythae.py --breakdown 1,50                # where a step's time goes
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import cpu_seconds  # noqa: E402
from torch import nn  # noqa: E402

from audiolvm.bottleneck.gaussian import GaussianBottleneck  # noqa: E402
from audiolvm.data.images import digits_split  # noqa: E402
from audiolvm.eval.likelihood import estimate_nll  # noqa: E402
from audiolvm.losses.likelihoods import BernoulliLikelihood  # noqa: E402
from audiolvm.models.vae import VAE, repeat_rows  # noqa: E402
from audiolvm.models.vae_objective import VAEObjective  # noqa: E402
from audiolvm.nn.mlp import MLPDecoder, MLPEncoder  # noqa: E402

LATENT, HIDDEN, SHAPE = 8, (200, 200), (1, 8, 8)
CONFIGS = (("VAE", 1), ("IWAE k=5", 5), ("IWAE k=50", 50))
UNIFORM_BINARY = 64 * math.log(2.0)  # 44.36 nats: every pixel a fair coin
UNIFORM_17 = 64 * math.log(17.0)  # 181.3 nats: uniform over the 17 raw levels (not this data)


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    """(train ``[1297 x 1 x 8 x 8]``, test ``[500 x 1 x 8 x 8]``) float32 in {0, 1}."""
    train, test = digits_split(num_test=500, split_seed=0, binarize="static")
    return (torch.stack([train[i]["image"] for i in range(len(train))]),
            torch.stack([test[i]["image"] for i in range(len(test))]))


def build_ours(k: int) -> VAE:
    return VAE(MLPEncoder(SHAPE, 2 * LATENT, hidden=HIDDEN), GaussianBottleneck(samples=k),
               MLPDecoder(LATENT, SHAPE, hidden=HIDDEN), BernoulliLikelihood(1), latent_shape=(LATENT,))


def build_pythae(k: int, ours: VAE) -> nn.Module:
    """pythae's VAE (k = 1) or IWAE (k > 1) with the same architecture, initialised with ``ours``' weights."""
    from pythae.models import IWAE, IWAEConfig, VAEConfig
    from pythae.models import VAE as PVAE
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    def net(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = net([64, *HIDDEN, 2 * LATENT])

        def forward(self, x):
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=h[:, :LATENT], log_covariance=h[:, LATENT:])

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = net([LATENT, *HIDDEN, 64])

        def forward(self, z):  # pythae's "bce" loss wants probabilities
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    enc, dec = Encoder(), Decoder()
    enc.net.load_state_dict(ours.encoder.net.state_dict())
    dec.net.load_state_dict(ours.decoder.net.state_dict())
    if k == 1:
        return PVAE(VAEConfig(input_dim=SHAPE, latent_dim=LATENT, reconstruction_loss="bce"), enc, dec)
    return IWAE(IWAEConfig(input_dim=SHAPE, latent_dim=LATENT, reconstruction_loss="bce", number_samples=k),
                enc, dec)


class NLLAdapter(nn.Module):
    """What ``estimate_nll`` needs: ``posterior(x) -> (mean, logvar)``, ``log_likelihood(x, z) -> Tensor[k*B]``
    (Bernoulli on the decoder's logits), from an ``encode`` and a ``logits`` function. Same code for both."""

    def __init__(self, model: nn.Module, encode, logits) -> None:
        super().__init__()
        self.model, self.encode, self.logits = model, encode, logits
        self.likelihood = BernoulliLikelihood(1)

    def posterior(self, x, label=None):
        return self.encode(x)

    def log_likelihood(self, x, z, label=None):
        params = self.logits(z).view(z.shape[0], *SHAPE)  # (k*B, 1, 8, 8)
        return self.likelihood.log_prob(repeat_rows(x, z.shape[0] // x.shape[0]), params)


def adapt_ours(model: VAE) -> NLLAdapter:
    return NLLAdapter(model, lambda x: model.posterior(x), lambda z: model.decode(z))


def adapt_pythae(model: nn.Module) -> NLLAdapter:
    def encode(x):
        out = model.encoder(x)
        return out.embedding, out.log_covariance

    return NLLAdapter(model, encode, lambda z: model.decoder.net(z))


#: our training setups, all timed against pythae: "ours" uses the same plain Adam as the pythae loop; "fused"
#: is what ``audiolvm train-image`` uses (the engine's fused AdamW kernel); "bf16" adds the engine's
#: ``train.mixed_precision=bf16`` (the model's forward under CPU bf16 autocast, the bound in float32); "compiled"
#: is fused Adam with the step function under ``torch.compile`` (``train.compile``).
VARIANTS = ("ours", "fused", "bf16", "compiled")


def build_variant(name: str, k: int, initial: dict, lr: float) -> tuple[VAE, torch.optim.Optimizer]:
    model = build_ours(k)
    model.load_state_dict(initial)
    if name == "bf16":  # as Accelerate wraps a prepared model's forward for mixed_precision="bf16"
        model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True if name != "ours" else None)
    return model.train(), opt


def train_pair(k: int, x_train: torch.Tensor, epochs: int, batch: int, lr: float, seed: int,
               variants: tuple[str, ...] = VARIANTS) -> dict:
    """Train our variants and pythae side by side from the same weights; per-step times in seconds."""
    torch.manual_seed(seed)
    first = build_ours(k)
    peer = build_pythae(k, first)
    models = {name: build_variant(name, k, first.state_dict(), lr) for name in variants}
    objective = VAEObjective()
    opt_peer = torch.optim.Adam(peer.parameters(), lr=lr)
    peer.train()

    def step_ours(name):
        model, opt = models[name]
        # "compiled": the whole step function under torch.compile, as train.compile does in the engine
        step_fn = torch.compile(objective) if name == "compiled" else objective

        def step(x):
            opt.zero_grad(set_to_none=True)
            loss = step_fn(model, {"image": x})["loss"]
            loss.backward()
            opt.step()
            return loss

        return step

    def step_peer(x):
        opt_peer.zero_grad(set_to_none=True)
        loss = peer({"data": x}).loss
        loss.backward()
        opt_peer.step()
        return loss

    steps = {**{name: (step_ours(name), []) for name in variants}, "pythae": (step_peer, [])}
    order = list(steps)
    order_rng = torch.Generator().manual_seed(seed + 1)
    busy0, own0 = cpu_seconds()
    wall0 = time.perf_counter()
    for _epoch in range(epochs):
        perm = torch.randperm(x_train.shape[0], generator=order_rng)
        for start in range(0, x_train.shape[0], batch):
            x = x_train[perm[start : start + batch]]
            for name in order:
                fn, times = steps[name]
                t0 = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - t0)
            order.reverse()
    wall = time.perf_counter() - wall0
    busy1, own1 = cpu_seconds()
    return {**{name: models[name][0] for name in variants}, "pythae": peer,
            "times": {n: np.array(t) for n, (_, t) in steps.items()}, "wall": wall,
            "other_cores": max(0.0, (busy1 - busy0) - (own1 - own0)) / wall}


def breakdown(k: int, x_train: torch.Tensor, steps: int, seed: int) -> None:
    """Where one step's time goes: four step variants on the same batches, interleaved (the order rotates
    every step), each split into zero_grad + forward, backward and Adam; medians after 20 warm-up steps.

    - ours (VAEObjective): the benchmark's step;
    - ours (model + item_bound): ``VAE.forward`` and the bare bound, none of the objective's logged metrics;
    - functional floor: the same maths written inline on the same ``nn.Linear`` stacks (no framework);
    - pythae: its ``VAE`` / ``IWAE`` forward and loss.
    """
    import torch.nn.functional as F

    from audiolvm.losses.bounds import iwae_bound, log_weights
    from audiolvm.models.vae_objective import item_bound

    torch.manual_seed(seed)
    ours = build_ours(k)
    peer = build_pythae(k, ours)
    objective = VAEObjective()
    enc, dec = ours.encoder.net, ours.decoder.net

    def functional(x):
        mean, logvar = enc(x.flatten(1)).chunk(2, 1)
        logvar = logvar.clamp(-30.0, 20.0)
        z = (mean + (0.5 * logvar).exp() * torch.randn(k, *mean.shape)).reshape(-1, LATENT)  # (k*B, D)
        log_px = -F.binary_cross_entropy_with_logits(dec(z), x.flatten(1).repeat(k, 1), reduction="none").sum(1)
        if k == 1:
            return -(log_px - GaussianBottleneck.kl(mean, logvar)).mean()
        log_w = log_weights(log_px, GaussianBottleneck.log_prior(z), GaussianBottleneck.log_q(z, mean, logvar), k)
        return -iwae_bound(log_w).mean()

    opt = torch.optim.Adam(ours.parameters(), lr=1e-3)
    opt_peer = torch.optim.Adam(peer.parameters(), lr=1e-3)
    variants = {
        "ours (VAEObjective)": (lambda x: objective(ours, {"image": x})["loss"], opt),
        "ours (model + item_bound only)": (lambda x: -item_bound(ours(x, sample=True)).mean(), opt),
        "functional floor (same nets)": (functional, opt),
        "pythae": (lambda x: peer({"data": x}).loss, opt_peer),
    }
    phases = {n: np.zeros((steps, 3)) for n in variants}
    names = list(variants)
    gen = torch.Generator().manual_seed(seed + 1)
    busy0, own0 = cpu_seconds()
    wall0 = time.perf_counter()
    for step in range(steps):
        x = x_train[torch.randint(0, x_train.shape[0], (100,), generator=gen)]
        names = names[1:] + names[:1]
        for name in names:
            fn, o = variants[name]
            t0 = time.perf_counter()
            o.zero_grad(set_to_none=True)
            loss = fn(x)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            o.step()
            phases[name][step] = (t1 - t0, t2 - t1, time.perf_counter() - t2)
    wall = time.perf_counter() - wall0
    busy1, own1 = cpu_seconds()
    other = max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
    print(f"\nk={k}: step breakdown, median ms over {steps - 20} steps; other load {other:.2f} cores")
    print("| variant | zero_grad + forward | backward | Adam step | total | pythae / variant |")
    print("|---|---:|---:|---:|---:|---:|")
    peer_total = float(np.median(phases["pythae"][20:].sum(1)))
    for name, ph in phases.items():
        med = np.median(ph[20:], axis=0) * 1e3
        total = float(np.median(ph[20:].sum(1))) * 1e3
        print(f"| {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {total:.2f} "
              f"| {peer_total * 1e3 / total:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--nll-samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides (tiny MLPs: 1)")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (NLL: mean and sd over them)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="first steps left out of the step times")
    parser.add_argument("--pythae-site", default="/tmp/pythae_site",
                        help="target dir holding pythae and its deps (put on sys.path)")
    parser.add_argument("--configs", default="VAE,IWAE k=5,IWAE k=50")
    parser.add_argument("--breakdown", default="", help="comma-separated k values: print the step breakdown "
                        "(ours / ours without metrics / functional floor / pythae) instead of the benchmark")
    parser.add_argument("--breakdown-steps", type=int, default=300)
    args = parser.parse_args()
    if os.path.isdir(args.pythae_site):
        sys.path.insert(0, args.pythae_site)
    from importlib.metadata import version

    import pythae  # noqa: F401  (fails here, before any training, if it is not importable)

    torch.set_num_threads(args.threads)
    x_train, x_test = load_data()
    print(f"torch {torch.__version__}, pythae {version('pythae')}, "
          f"{args.threads} thread(s); train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; "
          f"{args.epochs} epochs, batch {args.batch}, K={args.nll_samples}", flush=True)
    if args.breakdown:
        for k in (int(v) for v in args.breakdown.split(",")):
            breakdown(k, x_train, args.breakdown_steps, 0)
        return
    wanted = [c.strip() for c in args.configs.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    libs = (*VARIANTS, "pythae")
    rows = []
    for name, k in CONFIGS:
        if name not in wanted:
            continue
        row = {"model": name, "k": k, "other_cores": [], "train_wall": 0.0}
        times, nll, elbo = ({lib: [] for lib in libs} for _ in range(3))
        for seed in seeds:
            res = train_pair(k, x_train, args.epochs, args.batch, args.lr, seed)
            row["other_cores"].append(res["other_cores"])
            row["train_wall"] += res["wall"]
            for lib in libs:
                times[lib].append(res["times"][lib][args.warmup_steps :] * 1e3)
                model = res[lib]
                if lib == "bf16":  # score the trained weights in float32, like every other model
                    del model.forward
                adapted = adapt_pythae(model) if lib == "pythae" else adapt_ours(model)
                rep = estimate_nll(adapted, x_test, samples=args.nll_samples, chunk_size=500, batch_size=100,
                                   seed=seed)
                nll[lib].append(rep.nll)
                elbo[lib].append(rep.elbo)
            print(f"  {name} seed {seed}: " + "; ".join(f"{lib} NLL {nll[lib][-1]:.3f}, {times[lib][-1].mean():.2f} ms"
                                                      for lib in libs) + f"; other load {res['other_cores']:.2f} cores",
                  flush=True)
        for lib in libs:
            t = np.concatenate(times[lib])
            row[f"{lib}_mean_ms"], row[f"{lib}_median_ms"] = float(t.mean()), float(np.median(t))
            row[f"{lib}_nll"], row[f"{lib}_elbo"] = float(np.mean(nll[lib])), float(np.mean(elbo[lib]))
            row[f"{lib}_nll_sd"] = float(np.std(nll[lib], ddof=1)) if len(seeds) > 1 else float("nan")
        row["other_cores"] = float(np.mean(row["other_cores"]))
        rows.append(row)

    print()
    sd = len(seeds) > 1
    print("| model | setup | ms/step, mean (median) | pythae / this (means) | test NLL | -ELBO | below 64 ln 2 | "
          "other load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for lib in libs:
            nll_text = f"{r[f'{lib}_nll']:.2f}" + (f" ± {r[f'{lib}_nll_sd']:.2f}" if sd else "")
            print(f"| {r['model']} | {SETUPS[lib]} | {r[f'{lib}_mean_ms']:.2f} ({r[f'{lib}_median_ms']:.2f}) | "
                  f"**{r['pythae_mean_ms'] / r[f'{lib}_mean_ms']:.2f}×** | {nll_text} | {-r[f'{lib}_elbo']:.2f} | "
                  f"{UNIFORM_BINARY - r[f'{lib}_nll']:.2f} | {r['other_cores']:.2f} |")
    print(f"\nNLL / -ELBO in nats per image on the 500 test digits (IS with K={args.nll_samples}, our estimator on "
          f"every model); anchors: uniform over binary pixels 64 ln 2 = {UNIFORM_BINARY:.2f}, uniform over 17 levels "
          f"64 ln 17 = {UNIFORM_17:.1f} (17-level data, not this benchmark). Step times after "
          f"{args.warmup_steps} warm-up steps, pooled over seeds {seeds}; NLL mean (± sd) over those seeds; "
          "other load = CPU cores busy with other processes during training.")


SETUPS = {"ours": "ours, plain Adam (as pythae)", "fused": "ours, fused Adam (engine default)",
          "bf16": "ours, fused Adam + bf16 autocast", "compiled": "ours, fused Adam + compiled step (train.compile)",
          "pythae": "pythae 0.1.2, plain Adam"}


if __name__ == "__main__":
    main()
