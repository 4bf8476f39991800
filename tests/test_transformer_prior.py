"""Causal transformer and upsampler priors: the prior contract (tests/contracts.py), KV cache = full recomputation,
windowed sampling = reference loops, top-k/top-p filters, conditioning errors, and learning the entropy rate of a
Markov chain."""

from __future__ import annotations

import math
import time

import pytest
import torch

from audiolvm.models.priors import CausalTransformerPrior, UpsamplerPrior, filter_logits, sample_logits
from audiolvm.nn.attention import KVCache
from tests.contracts import PriorContract

K, UPPER_K, UPSAMPLE = 16, 8, 4


pytestmark = pytest.mark.usefixtures("one_thread")


def make_prior(kind: str, labels: int = 0, context: int = 32) -> CausalTransformerPrior:
    torch.manual_seed(0)
    if kind == "transformer":
        model = CausalTransformerPrior(K, context=context, dim=32, layers=2, heads=4, num_labels=labels)
    else:
        model = UpsamplerPrior(K, UPPER_K, UPSAMPLE, context=context, dim=32, layers=2, heads=4, num_labels=labels)
    return model.eval()


def make_cond(kind: str, batch: int, length: int, labels: int = 0, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = {}
    if labels:
        cond["label"] = torch.randint(0, labels, (batch,), generator=g)
    if kind == "upsampler":
        cond["upper"] = torch.randint(0, UPPER_K, (batch, -(-length // UPSAMPLE)), generator=g)
    return cond


def random_codes(batch: int, length: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, K, (batch, length), generator=torch.Generator().manual_seed(seed))


KINDS = ["transformer", "upsampler"]


# ---- the contract ---------------------------------------------------------------------------------
class TransformerContract(PriorContract):
    sees_whole_past = True

    def code_embedding(self, prior: CausalTransformerPrior) -> torch.nn.Module:
        return prior.tok


class TestCausalTransformerPrior(TransformerContract):
    def make_prior(self) -> CausalTransformerPrior:
        return CausalTransformerPrior(K, context=32, dim=32, layers=2, heads=4, num_labels=3)


class TestUpsamplerPrior(TransformerContract):
    def make_prior(self) -> UpsamplerPrior:
        return UpsamplerPrior(K, UPPER_K, UPSAMPLE, context=32, dim=32, layers=2, heads=4, num_labels=3)

    def cond_ranges(self, prior: UpsamplerPrior) -> dict[str, int]:
        return {**super().cond_ranges(prior), "upper": UPPER_K}

    def make_cond(self, prior: UpsamplerPrior, batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
        return make_cond("upsampler", batch, 2 * self.shape[0], labels=prior.num_labels, seed=seed)


# ---- KV cache -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("labels", [0, 3])
@pytest.mark.parametrize("chunk", [1, 3])
def test_cached_incremental_logits_equal_full_recomputation(kind: str, labels: int, chunk: int) -> None:
    model, n = make_prior(kind, labels), 23
    cond = make_cond(kind, 2, n, labels)
    codes = random_codes(2, n)
    full = model.logits(codes, cond)  # (2, n, K)
    cache = model.make_cache(2)
    with torch.no_grad():
        parts = [model.forward_step(codes[:, :0], cache, cond)]  # the start token: logits of code 0
        parts += [model.forward_step(codes[:, i : min(i + chunk, n - 1)], cache, cond) for i in range(0, n - 1, chunk)]
    incremental = torch.cat(parts, dim=1)  # (2, n, K)
    assert cache.length == n
    assert torch.allclose(incremental, full, atol=1e-5), (incremental - full).abs().max()


def test_kv_cache_memory_and_reset() -> None:
    cache = KVCache(layers=3, batch=2, heads=4, max_len=10, head_dim=8)
    assert cache.nbytes == 2 * 3 * (2 * 4 * 10 * 8) * 4  # k and v, 3 layers, float32
    cache.advance(7)
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="max_len=10"):
        cache.update(0, torch.zeros(2, 4, 11, 8), torch.zeros(2, 4, 11, 8))


# ---- sampling -------------------------------------------------------------------------------------
def reference_sample(model, n, length, cond, generator, top_k=None, top_p=None, overlap=None):
    """Ancestral sampling recomputing the full logits of the current window at every step."""
    overlap = model.context // 2 if overlap is None else overlap
    codes, s = torch.zeros(n, length, dtype=torch.long), 0
    for t in range(length):
        if t - s >= model.context:
            s = t - overlap
        logits = model.logits(codes[:, s : t + 1], cond)[:, -1]  # (n, K): code t given codes s..t-1
        codes[:, t] = sample_logits(logits, 1.0, top_k, top_p, generator)
    return codes


@pytest.mark.parametrize("overlap", [None, 0, 11])
def test_windowed_sampling_beyond_context_equals_windowed_reference(overlap) -> None:
    model, n, length = make_prior("transformer", labels=3, context=12), 2, 40
    cond = make_cond("transformer", n, length, labels=3)
    got = model.sample(n, length, cond, generator=torch.Generator().manual_seed(7), window_overlap=overlap,
                       progress=False)
    with torch.no_grad():
        want = reference_sample(model, n, length, cond, torch.Generator().manual_seed(7), overlap=overlap)
    assert got.shape == (n, length) and torch.equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_windowed_sampling_with_prime_runs_to_the_requested_length(kind: str) -> None:
    model, n, length = make_prior(kind, context=10), 2, 45
    cond = make_cond(kind, n, length)
    prime = random_codes(n, 13)
    out = model.sample(n, length, cond, prime=prime, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.shape == (n, length) and out.dtype == torch.long
    assert torch.equal(out[:, :13], prime) and int(out.min()) >= 0 and int(out.max()) < K
    assert torch.equal(model.sample(n, 13, cond, prime=prime, progress=False), prime)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_sampling_draws_the_same_codes_as_recomputing_every_window(kind: str) -> None:
    """The KV-cached sampler and the recompute-everything baseline (``use_cache=False``) agree draw for
    draw, through window slides and a prime, under one seed."""
    model, n, length = make_prior(kind, labels=3, context=12), 3, 40
    cond, prime = make_cond(kind, n, length, labels=3), random_codes(n, 5)
    draws = [model.sample(n, length, cond, 1.0, None, 0.95, torch.Generator().manual_seed(3), prime=prime,
                          window_overlap=4, progress=False, use_cache=c) for c in (True, False)]
    assert torch.equal(draws[0], draws[1])
    assert len(torch.unique(draws[0])) > 3  # a real sample, not a constant sequence


# ---- filters --------------------------------------------------------------------------------------
def test_top_k_keeps_exactly_k_largest() -> None:
    logits = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
    for k in (1, 3, 20):
        kept = torch.isfinite(filter_logits(logits, top_k=k))  # (50, 20)
        assert torch.all(kept.sum(-1) == k)
        assert torch.equal(kept, logits >= logits.topk(k, dim=-1).values[:, -1:])


def brute_force_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep-mask of the smallest most-probable set with mass >= p, row by row in float64."""
    keep = torch.zeros_like(logits, dtype=torch.bool)
    for i, row in enumerate(logits.double()):
        probs, order = torch.softmax(row, -1).sort(descending=True)
        mass, m = 0.0, 0
        while mass < p and m < len(probs) and probs[m] > 0:
            mass += float(probs[m])
            m += 1
        keep[i, order[:m]] = True
    return keep


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 2.0 * torch.randn(200, 12, generator=g)
    for p in (0.1, 0.35, 0.5, 0.77, 0.9, 0.99):
        kept = torch.isfinite(filter_logits(logits, top_p=p))
        want = brute_force_top_p(logits, p)
        assert torch.equal(kept, want), f"p={p}: {int((kept != want).sum())} rows differ"


def test_tiny_top_p_keeps_exactly_the_argmax() -> None:
    logits = 3.0 * torch.randn(100, 64, generator=torch.Generator().manual_seed(1))
    kept = torch.isfinite(filter_logits(logits, top_p=1e-6))
    assert torch.all(kept.sum(-1) == 1) and torch.equal(kept.float().argmax(-1), logits.argmax(-1))


def test_top_p_one_keeps_every_candidate_with_nonzero_probability() -> None:
    logits = 3.0 * torch.randn(100, 64, generator=torch.Generator().manual_seed(1))
    kept = torch.isfinite(filter_logits(logits, top_p=1.0))
    assert torch.equal(kept, torch.softmax(logits, -1) > 0)


# ---- conditioning ---------------------------------------------------------------------------------
def test_upsampler_needs_aligned_upper_codes() -> None:
    model, codes = make_prior("upsampler"), random_codes(2, 24)
    with pytest.raises(ValueError, match=r"cond\['upper'\] is required"):
        model.logits(codes)
    with pytest.raises(ValueError, match=r"cond\['upper'\] is required"):
        model.sample(2, 24, progress=False)
    with pytest.raises(ValueError, match=r"cond\['upper'\] is too short"):
        model.logits(codes, {"upper": torch.zeros(2, 5, dtype=torch.long)})


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_or_unknown_label_is_an_error(kind: str) -> None:
    model, n = make_prior(kind, labels=4), 16
    codes, cond = random_codes(2, n), make_cond(kind, 2, n)
    with pytest.raises(ValueError, match=r"cond\['label'\] is required"):
        model.logits(codes, cond)
    with pytest.raises(ValueError, match=r"cond\['label'\] holds ids outside"):
        model.logits(codes, {**cond, "label": torch.tensor([0, 4])})


def test_logits_beyond_context_suggest_windowed_evaluation() -> None:
    model = make_prior("transformer", context=8)
    with pytest.raises(ValueError, match="exceeds the prior's context 8; evaluate in windows"):
        model.log_prob(random_codes(1, 9))


# ---- learning -------------------------------------------------------------------------------------
def markov_chain(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A random transition matrix ``P : [k x k]``, its stationary distribution and entropy rate (nats)."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.softmax(2.0 * torch.randn(k, k, generator=g, dtype=torch.float64), dim=-1)
    evals, evecs = torch.linalg.eig(trans.T)
    pi = evecs[:, evals.real.argmax()].real
    pi = pi / pi.sum()  # left eigenvector for eigenvalue 1
    assert torch.allclose(pi @ trans, pi) and torch.all(pi > 0)
    rate = -(pi[:, None] * trans * trans.log()).sum()
    return trans, pi, float(rate)


def draw_chain(trans: torch.Tensor, pi: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    codes = torch.empty(n, length, dtype=torch.long)
    codes[:, 0] = torch.multinomial(pi, n, replacement=True, generator=g)
    for t in range(1, length):
        codes[:, t] = torch.multinomial(trans[codes[:, t - 1]], 1, generator=g).squeeze(-1)
    return codes


def test_prior_learns_the_entropy_rate_of_a_markov_chain() -> None:
    trans, pi, rate = markov_chain(8, seed=0)
    assert 0.5 < rate < math.log(8) - 0.2  # neither nearly deterministic nor nearly uniform
    g = torch.Generator().manual_seed(1)
    train, held_out = draw_chain(trans, pi, 8192, 32, g), draw_chain(trans, pi, 1024, 32, g)
    torch.manual_seed(0)
    model = CausalTransformerPrior(8, context=32, dim=32, layers=2, heads=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    start = time.perf_counter()
    for _ in range(160):
        batch = train[torch.randint(0, len(train), (64,), generator=g)]
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        nll = -model.code_log_probs(held_out)[:, 1:].mean().item()  # positions >= 1: the transition part
    elapsed = time.perf_counter() - start
    assert abs(nll - rate) < 0.05, f"held-out NLL {nll:.4f} vs entropy rate {rate:.4f} nats ({elapsed:.1f} s)"
