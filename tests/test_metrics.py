"""Reconstruction metrics (SI-SDR, mel / STFT distances, bitrate) and the per-level report."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import librosa
import pytest
import torch

from audiolvm.eval import (
    MEL_FFT_SIZES,
    CodebookUsage,
    ReconstructionReport,
    bitrate,
    codebook_stats,
    mel_scales,
    mrstft_distance,
    multiscale_mel_distance,
    si_sdr,
    spectral_convergence_per_item,
)
from audiolvm.losses import MultiResolutionSTFTLoss

RATE = 16000


def _speechlike(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """``Tensor[B x T]``: harmonic tones with an envelope plus a little noise (not white noise alone)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / RATE
    f0 = 100 + 200 * torch.rand(batch, 1, generator=g)  # (B, 1)
    harmonics = torch.arange(1, 9).view(1, 8, 1)  # (1, H, 1)
    tones = (torch.sin(2 * torch.pi * f0[:, :, None] * harmonics * t) / harmonics).sum(1)  # (B, T)
    envelope = 0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t + torch.rand(batch, 1, generator=g))
    return 0.3 * tones * envelope + 0.01 * torch.randn(batch, length, generator=g)


def _orthogonal_noise(x: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    """Zero-mean noise orthogonal to zero-mean ``x`` (per item) at exactly ``snr_db``."""
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    xc = (x - x.mean(-1, keepdim=True)).double()
    n = n - n.mean(-1, keepdim=True)
    n = n - (n * xc).sum(-1, keepdim=True) / xc.square().sum(-1, keepdim=True) * xc
    scale = (xc.square().sum(-1, keepdim=True) / n.square().sum(-1, keepdim=True) / 10 ** (snr_db / 10)).sqrt()
    return (n * scale).float()


# --- SI-SDR -------------------------------------------------------------------------------------------


def test_si_sdr_of_a_signal_with_itself_is_very_large() -> None:
    x = _speechlike(3, 8000)
    assert (si_sdr(x, x) > 60).all()


def test_si_sdr_of_a_negated_signal_is_large_by_definition_and_small_with_nonnegative_scale() -> None:
    """Standard SI-SDR's optimal scale is -1 for ``-x``, a perfect fit; clamping the scale at 0 makes
    the inverted copy score like uncorrelated noise."""
    x = _speechlike(3, 8000)
    assert (si_sdr(-x, x) > 60).all()
    assert (si_sdr(-x, x, nonnegative_scale=True) < -60).all()


def test_nonnegative_scale_agrees_for_positively_correlated_estimates() -> None:
    x = _speechlike(3, 8000)
    y = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(si_sdr(y, x, nonnegative_scale=True), si_sdr(y, x))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0, 30.0])
def test_si_sdr_equals_the_snr_of_added_noise(snr_db: float) -> None:
    x = _speechlike(4, 16000)
    exact = si_sdr(x + _orthogonal_noise(x, snr_db), x)  # noise orthogonal to x: SI-SDR is the SNR
    torch.testing.assert_close(exact, torch.full((4,), snr_db), atol=0.01, rtol=0)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=g)  # merely independent noise: SNR up to a small correlation
    gain = x.square().sum(-1, keepdim=True) / noise.square().sum(-1, keepdim=True) / 10 ** (snr_db / 10)  # (B, 1)
    noise = noise * gain.sqrt()
    assert (si_sdr(x + noise, x) - snr_db).abs().max() < 0.5


def test_si_sdr_is_invariant_to_positive_rescaling_and_offsets_of_pred() -> None:
    x = _speechlike(2, 8000)
    y = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    ref = si_sdr(y, x)
    for scaled in (0.1 * y, 7.0 * y, y + 0.3):
        torch.testing.assert_close(si_sdr(scaled, x), ref, atol=1e-3, rtol=0)
    assert (ref < 20).all()  # and it is not saturated: the check above is a real one


# --- spectral distances -------------------------------------------------------------------------------


def test_mel_distance_is_zero_for_identical_and_grows_with_noise() -> None:
    x = _speechlike(2, 8000)
    assert torch.equal(multiscale_mel_distance(x, x, RATE), torch.zeros(2))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    dists = torch.stack([multiscale_mel_distance(x + s * noise, x, RATE) for s in (1e-3, 1e-2, 1e-1, 1.0)])  # (4, B)
    assert (dists[0] > 0).all() and (dists.diff(dim=0) > 0).all()


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_default_mel_scales_have_no_empty_bands(rate: int) -> None:
    """An empty band would be log(eps) for any input: a constant 0 that dilutes the distance."""
    for n_fft, hop, n_mels in mel_scales(MEL_FFT_SIZES):
        assert hop == n_fft // 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels)
        assert (fb.max(axis=1) > 0).all(), f"{rate} Hz, n_fft {n_fft}: empty mel band among {n_mels}"


def test_mrstft_distance_is_zero_for_identical_and_matches_the_loss() -> None:
    x = _speechlike(3, 8000)
    assert torch.equal(mrstft_distance(x, x), torch.zeros(3))
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(6))
    res = ([512, 256], [128, 64], [512, 256])
    per_item = mrstft_distance(y, x, *res)
    assert (per_item > 0).all()
    batch_mean = MultiResolutionSTFTLoss(*res)(y, x)  # the training loss (batch means) is their mean
    torch.testing.assert_close(per_item.mean(), batch_mean["sc"] + batch_mean["logmag"])


def test_spectral_loss_reduction_none_averages_to_the_default_mean() -> None:
    x = _speechlike(3, 6000)
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    mean = MultiResolutionSTFTLoss([256, 128], [64, 32], [256, 128])(y, x)
    none = MultiResolutionSTFTLoss([256, 128], [64, 32], [256, 128], reduction="none")(y, x)
    assert none["sc"].shape == none["logmag"].shape == (3,)
    for k in ("sc", "logmag"):
        torch.testing.assert_close(none[k].mean(), mean[k])
    with pytest.raises(ValueError, match="reduction"):
        MultiResolutionSTFTLoss(reduction="sum")


def test_spectral_convergence_per_item() -> None:
    x = _speechlike(2, 8000)
    assert torch.equal(spectral_convergence_per_item(x, x), torch.zeros(2))
    torch.testing.assert_close(spectral_convergence_per_item(torch.zeros_like(x), x), torch.ones(2))
    torch.testing.assert_close(spectral_convergence_per_item(0.5 * x, x), torch.full((2,), 0.5))


# --- shapes, batching, devices ------------------------------------------------------------------------

METRICS = {
    "si_sdr": si_sdr,
    "mel": lambda p, t: multiscale_mel_distance(p, t, RATE),
    "mrstft": mrstft_distance,
    "sc": spectral_convergence_per_item,
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_per_item_values_do_not_depend_on_the_batch(name: str) -> None:
    x = _speechlike(4, 6000)
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    fn = METRICS[name]
    batched = fn(y[:, None], x[:, None])  # (B, 1, T)
    assert batched.shape == (4,) and batched.dtype == torch.float32
    alone = torch.cat([fn(y[i : i + 1], x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fn(y[2], x[2]), batched[2:3], rtol=1e-5, atol=1e-5)  # (T,) is one item
    torch.testing.assert_close(fn(y[[3, 0]], x[[3, 0]]), batched[[3, 0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metrics_reject_mismatched_or_multichannel_shapes(name: str) -> None:
    fn = METRICS[name]
    with pytest.raises(ValueError, match="equal shapes"):
        fn(torch.zeros(2, 4000), torch.zeros(2, 4001))
    with pytest.raises(ValueError, match="mono"):
        fn(torch.zeros(2, 2, 4000), torch.zeros(2, 2, 4000))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(METRICS))
def test_metrics_on_gpu_match_cpu(name: str) -> None:
    x = _speechlike(3, 8000)
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    gpu = METRICS[name](y.cuda(), x.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), METRICS[name](y, x), rtol=1e-3, atol=1e-3)


# --- bitrate and the report ---------------------------------------------------------------------------


def test_bitrate_arithmetic() -> None:
    assert bitrate(16000, 128, 2048) == 1375.0  # 125 frames/s x 11 bits
    assert bitrate(24000, 320, 1024) == 750.0
    assert bitrate(44100, 8, 1) == 0.0
    with pytest.raises(ValueError, match="hop"):
        bitrate(16000, 0, 2048)


def test_codebook_stats_from_usage() -> None:
    usage = CodebookUsage(8, torch.tensor([5, 5, 5, 5, 0, 0, 0, 0]))
    stats = codebook_stats(usage, sample_rate=16000, hop=64)
    assert (stats["used_codes"], stats["dead_codes"], stats["codes"]) == (4, 4, 8)
    assert stats["perplexity"] == pytest.approx(4.0)
    assert stats["bitrate_bps"] == pytest.approx(250 * 3)
    assert stats["entropy_bitrate_bps"] == pytest.approx(250 * 2)


def _filled_report() -> tuple[ReconstructionReport, dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """Two levels; utterances of different lengths, added singly and as a batch."""
    report, added = ReconstructionReport(RATE), {}
    for level, noise in (("level 0 (hop 8)", 0.02), ("level 1 (hop 64)", 0.2)):
        pairs = []
        for i, length in enumerate((4000, 5500, 7000)):
            x = _speechlike(1, length, seed=i)[0]  # (T,)
            y = x + noise * torch.randn(length, generator=torch.Generator().manual_seed(10 + i))
            report.add(level, y, x)
            pairs.append((y, x))
        x = _speechlike(2, 3000, seed=9)
        y = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(20))
        report.add(level, y[:, None], x[:, None])  # a batch of two, (B, 1, T)
        pairs += [(y[0], x[0]), (y[1], x[1])]
        added[level] = pairs
    report.set_stats("level 0 (hop 8)", {"perplexity": 812.5, "used_codes": 1900, "dead_codes": 148,
                                                  "bitrate_bps": bitrate(RATE, 8, 2048)})
    return report, added


def test_report_means_equal_a_direct_computation() -> None:
    report, added = _filled_report()
    rows = report.rows()
    assert [r["level"] for r in rows] == ["level 0 (hop 8)", "level 1 (hop 64)"]
    for row in rows:
        pairs = added[row["level"]]
        assert row["items"] == 5
        for name, fn in report.metrics.items():
            direct = sum(float(fn(y, x)[0]) for y, x in pairs) / len(pairs)
            assert row[name] == pytest.approx(direct, rel=1e-5, abs=1e-5), name
    assert rows[0]["si_sdr_db"] > rows[1]["si_sdr_db"] and rows[0]["mel_distance"] < rows[1]["mel_distance"]
    assert rows[0]["bitrate_bps"] == 22000.0 and "bitrate_bps" not in rows[1]


def test_report_table_has_one_line_per_level() -> None:
    report, _ = _filled_report()
    lines = report.to_table().splitlines()
    assert len(lines) == 2 + 2
    assert lines[0].split("|")[1].strip() == "level" and "si_sdr_db" in lines[0] and "dead_codes" in lines[0]
    assert lines[2].startswith("| level 0 (hop 8)") and "22000.000" in lines[2]
    assert lines[3].startswith("| level 1 (hop 64)") and lines[3].rstrip("| ").endswith("-")
    assert len({len(line) for line in lines}) == 1  # fixed width


def test_report_csv_and_json_round_trip(tmp_path: Path) -> None:
    report, _ = _filled_report()
    rows = report.rows()
    json_path = report.write_json(tmp_path / "out" / "recon.json")
    assert json.loads(json_path.read_text()) == rows
    with open(report.write_csv(tmp_path / "recon.csv"), newline="") as f:
        read = list(csv.DictReader(f))
    assert [r["level"] for r in read] == [r["level"] for r in rows]
    for got, want in zip(read, rows, strict=True):
        assert list(got) == report.columns()
        for col in report.columns()[1:]:
            if want.get(col) is None:
                assert got[col] == ""
            else:
                assert math.isclose(float(got[col]), float(want[col]), rel_tol=1e-12)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "recon.csv", "recon.json"]  # no temporaries


def test_report_add_returns_per_item_values_and_keeps_them() -> None:
    report = ReconstructionReport(RATE, metrics={"si_sdr_db": si_sdr})
    x = _speechlike(3, 4000)
    out = report.add("a", x, x)
    assert out["si_sdr_db"].shape == (3,)
    assert report.values("a", "si_sdr_db") == pytest.approx(out["si_sdr_db"].tolist())
    assert report.columns() == ["level", "items", "si_sdr_db"]


def test_mel_modules_are_cached_across_calls() -> None:
    from audiolvm.eval.reconstruction import _mel_loss

    x = _speechlike(1, 4000)
    multiscale_mel_distance(x, x, 11025)  # a rate no other test uses
    misses = _mel_loss.cache_info().misses
    multiscale_mel_distance(x + 0.1, x, 11025)
    assert _mel_loss.cache_info().misses == misses


def test_mel_loss_of_a_scaled_copy_is_the_log_power_ratio() -> None:
    """Halving the amplitude divides every mel band's power by 4: the training term ``mel`` is ln 4 (up to
    the log's epsilon in near-silent bands), and 0 for identical inputs."""
    from audiolvm.losses import MultiScaleMelLoss

    x = _speechlike(3, 4000) * 10
    loss = MultiScaleMelLoss(16000, [1024, 256])
    assert float(loss(x, x)) == 0.0
    assert float(loss(0.5 * x, x)) == pytest.approx(math.log(4.0), rel=0.02)
