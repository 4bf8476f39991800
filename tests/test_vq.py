"""Properties of VectorQuantizerEMA: exact nearest codes, straight-through gradient, EMA arithmetic,
restarts, initialisation, eval invariants, non-finite inputs and two-process statistics."""

from __future__ import annotations

import io
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from audiolvm.bottleneck import VectorQuantizerEMA
from audiolvm.bottleneck.vq import argmin_rows, augment


def _with_codebook(codebook: torch.Tensor, **kwargs) -> VectorQuantizerEMA:
    """A quantizer already initialised with ``codebook [K x D]`` (ema_sum = codebook, counts = 1)."""
    k, d = codebook.shape
    vq = VectorQuantizerEMA(num_codes=k, dim=d, **kwargs)
    vq.codebook.copy_(codebook)
    vq.ema_sum.copy_(codebook)
    vq.ema_count.fill_(1.0)
    vq.initialized.fill_(1.0)
    return vq


def _points(*rows: tuple[float, ...]) -> torch.Tensor:
    """Points as a channels-first batch ``[1 x D x N]``."""
    return torch.tensor(rows, dtype=torch.float32).t().unsqueeze(0)  # (1, D, N)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1).reshape(-1, x.shape[1])  # (N, D)


def _state(vq: VectorQuantizerEMA) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in vq.state_dict().items()}


SHAPES = [((2, 4, 37), 16), ((3, 4, 5, 7), 8), ((1, 4, 100), 33), ((2, 4, 9), 4096), ((5, 4), 3)]


@pytest.mark.parametrize("num_codes", [24, 97, 256])  # one block, prime K (plain argmin), 4 blocks of 64
@pytest.mark.parametrize("shape,chunk", SHAPES)
def test_codes_equal_brute_force_nearest_neighbour(shape, chunk, num_codes):
    g = torch.Generator().manual_seed(0)
    # Small integers make every distance exact in float32, so even ties must agree (lowest index).
    x = torch.randint(-3, 4, shape, generator=g).float()
    codebook = torch.randint(-3, 4, (num_codes, 4), generator=g).float()
    vq = _with_codebook(codebook, chunk_size=chunk).eval()
    codes = vq(x).codes
    ref = torch.cdist(_flat(x).double(), codebook.double(), compute_mode="donot_use_mm_for_euclid_dist")
    assert codes.shape == (shape[0], *shape[2:])
    assert torch.equal(codes.reshape(-1), ref.argmin(dim=1))
    assert torch.equal(vq.quantize(x), codes)


@pytest.mark.parametrize("num_codes", [2048, 1000, 61])
def test_blockwise_argmin_equals_torch_argmin_including_ties(num_codes):
    g = torch.Generator().manual_seed(0)
    values = torch.randint(-2, 3, (300, num_codes), generator=g).float()  # many ties across blocks
    values[7] = 1.0  # a row that is all ties
    out = torch.empty(300, dtype=torch.long)
    assert torch.equal(argmin_rows(values, out), torch.argmin(values, dim=1))
    noisy = torch.randn(300, num_codes, generator=g)
    assert torch.equal(argmin_rows(noisy, out), torch.argmin(noisy, dim=1))


def test_gaussian_codes_are_nearest_within_float_tolerance():
    g = torch.Generator().manual_seed(1)
    x, codebook = torch.randn(3, 8, 301, generator=g), torch.randn(100, 8, generator=g)
    codes = _with_codebook(codebook, chunk_size=64).quantize(x).reshape(-1)
    dist2 = torch.cdist(_flat(x).double(), codebook.double()).square()  # (N, K)
    chosen = dist2.gather(1, codes[:, None]).squeeze(1)
    assert torch.all(chosen - dist2.min(dim=1).values <= 1e-4)
    assert (codes == dist2.argmin(dim=1)).float().mean() > 0.99


def test_straight_through_gradient_is_identity():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(num_codes=16, dim=4).train()
    x = torch.randn(2, 4, 10, requires_grad=True)
    w = torch.randn(2, 4, 10)
    result = vq(x)
    (w * result.z).sum().backward()
    assert torch.equal(x.grad, w)


def test_commitment_loss_is_beta_times_mse():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    vq = _with_codebook(codebook, beta=0.5).eval()
    x = _points((1.0, 0.0), (9.0, 2.0))  # errors: 1, 1 + 4 -> mean over 4 elements = 6 / 4
    assert torch.allclose(vq(x).losses["commitment"], torch.tensor(0.5 * 6.0 / 4.0))


def test_one_ema_update_matches_hand_computation():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq = _with_codebook(codebook, decay=0.5, eps=0.1, dead_threshold=0.0).train()
    x = _points((1.0, 0.0), (-1.0, 0.0), (9.0, 0.0), (11.0, 2.0))  # codes 0, 0, 1, 1
    result = vq(x)
    assert result.codes.tolist() == [[0, 0, 1, 1]]
    # counts [2, 2, 0]; sums [(0, 0), (20, 2), (0, 0)]
    count = [0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 0]  # [1.5, 1.5, 0.5]
    ema_sum = [[0.0, 0.0], [0.5 * 10 + 0.5 * 20, 0.5 * 0 + 0.5 * 2], [0.0, 0.5 * 10]]
    n = sum(count)  # 3.5
    smoothed = [(c + 0.1) / (n + 3 * 0.1) * n for c in count]
    expected = [[s / smoothed[i] for s in row] for i, row in enumerate(ema_sum)]
    assert torch.allclose(vq.ema_count, torch.tensor(count))
    assert torch.allclose(vq.ema_sum, torch.tensor(ema_sum))
    assert torch.allclose(vq.codebook, torch.tensor(expected), atol=1e-6)
    assert result.metrics["used_frac"].item() == pytest.approx(2 / 3)


def test_unused_code_decays_then_restarts_on_an_input_vector():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [100.0, 100.0]])
    vq = _with_codebook(codebook, decay=0.9, dead_threshold=0.5).train()
    x = _points((1.0, 0.0), (-1.0, 0.0), (9.0, 0.0), (11.0, 0.0))
    torch.manual_seed(0)
    for _ in range(6):  # count of code 2: 0.9 ** 6 = 0.53 > 0.5
        result = vq(x)
        assert result.metrics["dead_codes"].item() == 0
        assert torch.allclose(vq.codebook[2], torch.tensor([100.0, 100.0]), atol=1e-2)
    result = vq(x)  # 0.9 ** 7 = 0.48 < 0.5 -> restarted
    assert result.metrics["dead_codes"].item() == 1
    assert any(torch.equal(vq.codebook[2], row) for row in _flat(x))
    assert vq.ema_count[2].item() == pytest.approx(0.5 / 0.9)
    assert torch.allclose(vq.ema_sum[2], vq.codebook[2] * 0.5 / 0.9)
    assert vq(x).metrics["dead_codes"].item() == 0  # one update of grace even if unused


def test_perplexity_of_uniform_usage_equals_num_codes():
    codebook = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    uniform = codebook.repeat(3, 1)[torch.randperm(12)].t().unsqueeze(0)  # (1, 2, 12), each code 3x
    for training in (False, True):
        vq = _with_codebook(codebook, dead_threshold=0.0).train(training)
        metrics = vq(uniform).metrics
        assert metrics["perplexity"].item() == pytest.approx(4.0, rel=1e-5)
        assert metrics["used_frac"].item() == 1.0
    single = _with_codebook(codebook).eval()(torch.zeros(1, 2, 12)).metrics
    assert single["perplexity"].item() == pytest.approx(1.0)
    assert single["used_frac"].item() == 0.25


def test_first_batch_init_draws_codebook_rows_from_x():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 50)  # N = 100 >= K = 32: exact, distinct rows
    vq = VectorQuantizerEMA(num_codes=32, dim=8).train()
    vq.quantize(x)  # no-update calls must not initialise
    vq.eval()(x)
    assert vq.initialized.item() == 0
    vq.train()._initialize(augment(_flat(x)))
    flat = _flat(x)
    assert all(any(torch.equal(row, f) for f in flat) for row in vq.codebook)
    assert torch.unique(vq.codebook, dim=0).shape[0] == 32
    assert torch.equal(vq.ema_sum, vq.codebook) and torch.all(vq.ema_count == 1)
    trained = VectorQuantizerEMA(num_codes=32, dim=8).train()
    trained(x)
    assert trained.initialized.item() == 1
    assert torch.all(torch.cdist(trained.codebook, flat).min(dim=1).values < 0.5)  # near input rows


def test_first_batch_init_with_fewer_vectors_than_codes_adds_small_noise():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 10)  # N = 10 < K = 32: with replacement plus noise
    vq = VectorQuantizerEMA(num_codes=32, dim=4, dead_threshold=0.0)
    vq._initialize(augment(_flat(x)))
    dist = torch.cdist(vq.codebook, _flat(x)).min(dim=1).values
    assert torch.all(dist < 0.1) and torch.all(dist > 0)
    assert torch.unique(vq.codebook, dim=0).shape[0] == 32


def test_kmeans_init_lowers_quantization_error_vs_random_init():
    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.randn(16, 8, generator=g)
    flat = centres[torch.randint(16, (2048,), generator=g)] + torch.randn(2048, 8, generator=g)
    x = flat.t().unsqueeze(0)  # (1, 8, 2048)
    errors = {}
    for init in ("first_batch", "kmeans"):
        torch.manual_seed(0)
        vq = VectorQuantizerEMA(num_codes=16, dim=8, beta=1.0, init=init, kmeans_iters=10).train()
        errors[init] = vq(x).losses["commitment"].item()  # MSE with the codebook right after init
    assert errors["kmeans"] < 0.75 * errors["first_batch"]


def test_eval_mode_changes_no_buffer_and_embed_of_codes_is_z():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(num_codes=64, dim=6).train()
    vq(torch.randn(4, 6, 30))
    vq.eval()
    before = _state(vq)
    x = torch.randn(3, 6, 5, 7)
    result = vq(x)
    after = vq.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert result.z.shape == x.shape
    assert torch.allclose(vq.embed(result.codes), result.z, atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_skips_ema_update(bad):
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(num_codes=16, dim=4).train()
    vq(torch.randn(2, 4, 20))
    before = _state(vq)
    x = torch.randn(2, 4, 20)
    x[1, 2, 3] = bad
    result = vq(x)
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())
    assert result.codes.min() >= 0 and result.codes.max() < 16
    fresh = VectorQuantizerEMA(num_codes=16, dim=4).train()
    fresh(x)
    assert fresh.initialized.item() == 0 and torch.all(fresh.codebook == 0)


def test_bf16_autocast_computes_in_float32_and_returns_input_dtype():
    torch.manual_seed(0)
    vq = _with_codebook(torch.randn(32, 8)).eval()
    x = torch.randn(2, 8, 40).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = vq(x)
    assert result.z.dtype == torch.bfloat16
    assert result.losses["commitment"].dtype == torch.float32
    assert torch.equal(result.codes, vq.quantize(x.float()))


def test_restarts_resume_exactly_from_saved_rng_state():
    torch.manual_seed(0)
    data = [torch.randn(2, 4, 25) for _ in range(4)]
    vq = VectorQuantizerEMA(num_codes=64, dim=4, dead_threshold=2.0).train()
    for x in data[:2]:
        vq(x)
    saved, rng = _state(vq), torch.get_rng_state()
    for x in data[2:]:
        vq(x)
    resumed = VectorQuantizerEMA(num_codes=64, dim=4, dead_threshold=2.0).train()
    resumed.load_state_dict(saved)
    torch.set_rng_state(rng)
    for x in data[2:]:
        resumed(x)
    assert torch.equal(resumed.codebook, vq.codebook)


def test_buffers_are_float32_state_and_round_trip_through_safetensors():
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(num_codes=8, dim=3).train()
    vq(torch.randn(2, 3, 10))
    state = vq.state_dict()
    assert list(vq.parameters()) == []
    assert set(state) == {"codebook", "ema_count", "ema_sum", "initialized"}
    assert all(v.dtype == torch.float32 for v in state.values())
    loaded = safetensors_torch.load(safetensors_torch.save(state))
    copy = VectorQuantizerEMA(num_codes=8, dim=3)
    copy.load_state_dict(loaded)
    assert torch.equal(copy.codebook, vq.codebook) and copy.initialized.item() == 1
    assert "num_codes=8, dim=3, beta=0.25, decay=0.99" in repr(vq)
    torch.save(state, io.BytesIO())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_codes": 0}, "num_codes"),
        ({"dim": 0}, "dim"),
        ({"beta": -1.0}, "beta"),
        ({"decay": 1.0}, "decay"),
        ({"eps": 0.0}, "eps"),
        ({"dead_threshold": -1.0}, "dead_threshold"),
        ({"init": "random"}, "init"),
        ({"kmeans_iters": -1}, "kmeans_iters"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VectorQuantizerEMA(**kwargs)


def test_wrong_channel_dim_raises():
    with pytest.raises(ValueError, match="channels-first"):
        VectorQuantizerEMA(num_codes=4, dim=8)(torch.randn(2, 16, 8))


# ------------------------------------------------------------------------------ two processes

STEPS, K2, D2 = 4, 32, 4


def _rank_data(r: int) -> list[torch.Tensor]:
    """Different data on each rank: rank 1's vectors are shifted far from rank 0's."""
    g = torch.Generator().manual_seed(100 + r)
    return [torch.randn(2, D2, 30, generator=g) + 4.0 * r for _ in range(STEPS)]


def _fixed_vq() -> VectorQuantizerEMA:
    codebook = torch.randn(K2, D2, generator=torch.Generator().manual_seed(7)) * 3
    return _with_codebook(codebook, decay=0.7, dead_threshold=0.0).train()


def _dist_worker(r: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=world)
    torch.manual_seed(1234)
    restarting = VectorQuantizerEMA(num_codes=K2, dim=D2, decay=0.7, dead_threshold=1.0).train()
    dead = sum(restarting(x).metrics["dead_codes"].item() for x in _rank_data(r))
    no_restart = _fixed_vq()
    for x in _rank_data(r):
        no_restart(x)
    torch.save(
        {"restarting": restarting.codebook, "dead": dead, "no_restart": no_restart.codebook},
        os.path.join(out_dir, f"rank{r}.pt"),
    )
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_share_ema_statistics_and_stay_identical(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_dist_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["dead"] > 0  # restarts did happen
    assert torch.equal(r0["restarting"], r1["restarting"])
    assert torch.equal(r0["no_restart"], r1["no_restart"])
    single, rank0_only = _fixed_vq(), _fixed_vq()
    for x0, x1 in zip(_rank_data(0), _rank_data(1), strict=True):
        single(torch.cat([x0, x1], dim=0))
        rank0_only(x0)
    assert torch.allclose(r0["no_restart"], single.codebook, atol=1e-5)
    assert not torch.allclose(r0["no_restart"], rank0_only.codebook, atol=1e-2)
