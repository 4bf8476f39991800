"""Vector quantization with an exponential-moving-average (EMA) codebook, as in VQ-VAE-2 / Jukebox.

The codebook is not learned by gradient descent: after every training step each code moves to
the (Laplace-smoothed) EMA mean of the encoder outputs assigned to it. Statistics are all-reduced
over processes, so under DDP every rank contributes and the codebooks stay bit-identical without
ever broadcasting rank 0's buffers. Codes that stop being used are restarted on recent encoder
outputs (Jukebox's "random restarts").

The nearest-code search never builds the ``N x K`` distance matrix: rows are processed in chunks
of ``chunk_size`` with one ``addmm`` into a reused buffer and an ``argmin``. Encoder outputs are
copied once into ``[x | 1]`` rows, so one ``index_add_`` gives per-code sums and counts together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiolvm.bottleneck.base import Bottleneck, BottleneckResult
from audiolvm.core.distributed import all_reduce_sum_, all_true, broadcast_, rank
from audiolvm.core.errors import UsageError

_INITS = ("first_batch", "kmeans")


def augment(vectors: torch.Tensor) -> torch.Tensor:
    """``[x | 1]``: ``Tensor[... x D]`` (any strides/dtype) -> float32 ``Tensor[N x (D+1)]``, one copy.

    With this layout one ``index_add_`` gives per-code sums and counts together; the nearest-code
    search reads the ``[:, :-1]`` view.
    """
    dim = vectors.shape[-1]
    out = torch.empty(*vectors.shape[:-1], dim + 1, dtype=torch.float32, device=vectors.device)
    out[..., :dim] = vectors
    out[..., dim] = 1.0
    return out.view(-1, dim + 1)  # (N, D+1)


@torch.no_grad()
def nearest_codes(
    flat: torch.Tensor, codebook: torch.Tensor, chunk_size: int = 4096, buffer: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of the nearest codebook row (squared L2) for every row of ``flat``.

    Uses ``argmin_k ||e_k||^2 - 2 x.e_k`` (the ``||x||^2`` term is constant per row), computed
    ``chunk_size`` rows at a time with one ``addmm`` each; ties go to the lowest index.

    Args:
        flat: ``Tensor[N x D]`` float32 vectors (any row stride, e.g. ``augment(x)[:, :-1]``).
        codebook: ``Tensor[K x D]`` float32 codes.
        chunk_size: rows per distance chunk; peak extra memory is ``chunk_size * K`` floats.
        buffer: optional ``Tensor[>=min(N, chunk_size) x K]`` to reuse as distance scratch space.

    Returns:
        ``LongTensor[N]`` code indices.
    """
    n, k = flat.shape[0], codebook.shape[0]
    rows = min(n, chunk_size)
    if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != k:
        buffer = flat.new_empty(rows, k)
    e_norm = codebook.square().sum(dim=1)  # (K,)
    codebook_t = codebook.t()  # (D, K)
    codes = torch.empty(n, dtype=torch.long, device=flat.device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        dist = buffer[: stop - start]  # (n_chunk, K)
        torch.addmm(e_norm, flat[start:stop], codebook_t, beta=1.0, alpha=-2.0, out=dist)
        argmin_rows(dist, out=codes[start:stop])
    return codes


def argmin_rows(values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Row-wise argmin of ``values : Tensor[n x K]`` into ``out : Long[n]``; ties -> lowest index.

    Two stages: the exact minimum of each block of ``b`` columns (``amin`` vectorises well), the
    first block holding the row minimum, then ``argmin`` inside that block only. Same result as
    ``torch.argmin(values, dim=1)``, about 3x faster on CPU for K=2048 (``b`` = 64).
    """
    n, k = values.shape
    block = _block_size(k)
    if block < 8:
        return torch.argmin(values, dim=1, out=out)
    blocks = values.view(n, k // block, block)  # (n, K/b, b)
    best_block = torch.argmin(torch.amin(blocks, dim=2), dim=1)  # (n,)
    rows = torch.arange(n, device=values.device)
    torch.argmin(blocks[rows, best_block], dim=1, out=out)  # (n,) index inside the block
    return out.add_(best_block * block)


def _block_size(k: int, largest: int = 64) -> int:
    """The largest divisor of ``k`` that is at most ``largest``."""
    return next(b for b in range(min(k, largest), 0, -1) if k % b == 0)


def code_stats(points: torch.Tensor, codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Per-code ``[sum of x | count]`` as ``Tensor[K x (D+1)]`` from :func:`augment` points."""
    return torch.zeros(num_codes, points.shape[1], device=points.device).index_add_(0, codes, points)


@torch.no_grad()
def sample_rows(flat: torch.Tensor, num: int, noise: float = 0.01) -> torch.Tensor:
    """``num`` rows of ``flat`` (``Tensor[N x D]``) drawn with the global torch RNG.

    Without replacement when ``N >= num`` (exact rows); otherwise with replacement plus Gaussian
    noise of std ``noise * flat.std()`` so that duplicates can separate. Returns ``Tensor[num x D]``.
    """
    n = flat.shape[0]
    if n >= num:
        return flat[torch.randperm(n, device=flat.device)[:num]]
    rows = flat[torch.randint(n, (num,), device=flat.device)]
    scale = noise * flat.std(correction=0) if n > 1 else noise
    return rows + scale * torch.randn_like(rows)


@torch.no_grad()
def kmeans(flat: torch.Tensor, num_codes: int, iters: int, chunk_size: int = 4096) -> torch.Tensor:
    """Lloyd's k-means on ``flat`` (``Tensor[N x D]``) started from random rows.

    A centroid that loses all its points keeps its previous position. Returns ``Tensor[K x D]``.
    """
    centroids = sample_rows(flat, num_codes)
    points = augment(flat)  # (N, D+1)
    buffer = flat.new_empty(min(flat.shape[0], chunk_size), num_codes)
    for _ in range(iters):
        codes = nearest_codes(points[:, :-1], centroids, chunk_size, buffer)
        stats = code_stats(points, codes, num_codes)  # (K, D+1)
        counts = stats[:, -1]
        used = counts > 0
        centroids[used] = stats[used, :-1] / counts[used, None]
    return centroids


def usage_metrics(counts: torch.Tensor, dead: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scalar codebook-usage metrics from per-code counts ``Tensor[K]`` and a dead mask ``Bool[K]``."""
    probs = counts / counts.sum().clamp_min(1.0)  # (K,)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum()
    return {
        "perplexity": entropy.exp(),
        "used_frac": (counts > 0).float().mean(),
        "dead_codes": dead.sum().float(),
    }


def _check_args(num_codes: int, dim: int, beta: float, decay: float, eps: float,
                dead_threshold: float, init: str, kmeans_iters: int, chunk_size: int) -> None:
    checks = [
        (num_codes >= 1, f"num_codes must be >= 1, got {num_codes}"),
        (dim >= 1, f"dim must be >= 1, got {dim}"),
        (beta >= 0, f"beta (commitment weight) must be >= 0, got {beta}"),
        (0.0 <= decay < 1.0, f"decay must be in [0, 1), got {decay}"),
        (eps > 0, f"eps (Laplace smoothing) must be > 0, got {eps}"),
        (dead_threshold >= 0, f"dead_threshold must be >= 0 (0 disables restarts), got {dead_threshold}"),
        (init in _INITS, f"init must be one of {_INITS}, got {init!r}"),
        (kmeans_iters >= 0, f"kmeans_iters must be >= 0, got {kmeans_iters}"),
        (chunk_size >= 1, f"chunk_size must be >= 1, got {chunk_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(f"VectorQuantizerEMA: {message}")


class VectorQuantizerEMA(Bottleneck):
    """Nearest-neighbour vector quantizer with an EMA codebook and dead-code restarts.

    Args:
        num_codes: codebook size K.
        dim: code dimension D (the channel dim of the input).
        beta: commitment loss weight (included in ``losses["commitment"]``).
        decay: EMA decay of the per-code counts and sums.
        eps: Laplace smoothing constant for the counts.
        dead_threshold: codes whose EMA count falls below this are restarted; 0 disables restarts.
            A restarted code gets ``ema_count = dead_threshold / decay`` (and ``ema_sum`` = vector
            times that), so it survives exactly one more update even if unused, and afterwards
            only while its EMA usage stays at or above the threshold.
        init: ``"first_batch"`` (random rows of the first training batch) or ``"kmeans"``.
        kmeans_iters: Lloyd iterations for ``init="kmeans"``.
        chunk_size: rows per distance chunk in the nearest-code search.

    Buffers (float32, in ``state_dict``): ``codebook [K x D]``, ``ema_count [K]``,
    ``ema_sum [K x D]``, ``initialized []`` (0. or 1.). Keep them float32 (use autocast for
    mixed precision rather than ``.half()``); distances are always computed in float32.
    """

    discrete = True
    codebook: torch.Tensor  # buffers, registered in __init__
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, num_codes: int = 2048, dim: int = 64, beta: float = 0.25, decay: float = 0.99,
                 eps: float = 1e-5, dead_threshold: float = 1.0, init: str = "first_batch",
                 kmeans_iters: int = 10, chunk_size: int = 4096) -> None:
        super().__init__()
        _check_args(num_codes, dim, beta, decay, eps, dead_threshold, init, kmeans_iters, chunk_size)
        self.num_codes, self.dim = num_codes, dim
        self.beta, self.decay, self.eps = beta, decay, eps
        self.dead_threshold, self.init = dead_threshold, init
        self.kmeans_iters, self.chunk_size = kmeans_iters, chunk_size
        self.register_buffer("codebook", torch.zeros(num_codes, dim))
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", torch.zeros(num_codes, dim))
        self.register_buffer("initialized", torch.zeros(()))
        self._distance_buffer: torch.Tensor | None = None  # scratch, reused across calls
        self._known_initialized = False  # host-side copy of ``initialized`` once it is 1: no sync per step

    def _load_from_state_dict(self, *args, **kw) -> None:  # noqa: ANN002, ANN003
        super()._load_from_state_dict(*args, **kw)
        self._known_initialized = False  # read the loaded buffer again

    def _is_initialized(self) -> bool:
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)  # a host sync, only until the codebook exists
        return self._known_initialized

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, decay={self.decay}"

    def forward(self, x: torch.Tensor) -> BottleneckResult:
        """Quantize ``x : Tensor[B x D x *S]``; in training mode also update the codebook.

        Returns ``z`` (straight-through, ``x``'s dtype and shape), ``codes : Long[B x *S]``,
        ``losses["commitment"]`` (beta * MSE to the detached codes) and usage ``metrics``.
        """
        points = self._flatten(x)  # (N, D+1) float32 [x | 1], detached
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.training and not self._is_initialized():
                self._initialize(points)
            codebook = self.codebook.float()
            codes = nearest_codes(points[:, :-1], codebook, self.chunk_size, self._buffer_for(points))  # (N,)
            quantized = F.embedding(codes, codebook)  # (N, D), taken before the update below
            metrics = self._update(points, codes) if self.training else self._eval_metrics(codes)
            q = self._unflatten(quantized, x.shape)  # (B, D, *S)
            commitment = self.beta * F.mse_loss(x.float(), q)
        z = x + (q.to(x.dtype) - x).detach()
        codes = codes.view(x.shape[0], *x.shape[2:])  # (B, *S)
        return BottleneckResult(z=z, codes=codes, losses={"commitment": commitment}, metrics=metrics)

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``Long[B x *S]`` of ``x : Tensor[B x D x *S]``; no update, no gradient."""
        points = self._flatten(x)  # (N, D+1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            codebook = self.codebook.float()
            codes = nearest_codes(points[:, :-1], codebook, self.chunk_size, self._buffer_for(points))
        return codes.view(x.shape[0], *x.shape[2:])  # (B, *S)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook lookup: ``codes : Long[B x *S]`` -> ``Tensor[B x D x *S]`` (float32)."""
        vectors = F.embedding(codes, self.codebook.float())  # (B, *S, D)
        return vectors.movedim(-1, 1)  # (B, D, *S)

    # ----------------------------------------------------------------------------------- helpers

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.dim:
            raise UsageError(
                f"VectorQuantizerEMA expects channels-first input [B x {self.dim} x *S], got shape "
                f"{tuple(x.shape)}; move the feature dim to position 1 (e.g. x.transpose(1, 2))"
            )
        return augment(x.detach().movedim(1, -1))  # (N, D+1) from (B, *S, D)

    @staticmethod
    def _unflatten(flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        batch, dim, spatial = shape[0], shape[1], shape[2:]
        return flat.view(batch, *spatial, dim).movedim(-1, 1)  # (B, D, *S)

    def _buffer_for(self, points: torch.Tensor) -> torch.Tensor:
        rows = min(points.shape[0], self.chunk_size)
        buf = self._distance_buffer
        if buf is None or buf.device != points.device or buf.shape[0] < rows:
            buf = points.new_empty(rows, self.num_codes)
            self._distance_buffer = buf
        return buf

    @torch.no_grad()
    def _initialize(self, points: torch.Tensor) -> None:
        """Codebook from this batch (``[x | 1]`` points), computed on rank 0 and broadcast.

        Skipped (on every rank) if any rank's batch holds a non-finite value.
        """
        flat = points[:, :-1]  # (N, D)
        if not all_true(bool(torch.isfinite(flat).all()), device=flat.device):
            return
        if rank() == 0:
            if self.init == "kmeans":
                self.codebook.copy_(kmeans(flat, self.num_codes, self.kmeans_iters, self.chunk_size))
            else:
                self.codebook.copy_(sample_rows(flat, self.num_codes))
        broadcast_(self.codebook)
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(1.0)

    def _eval_metrics(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        counts = torch.bincount(codes, minlength=self.num_codes).float()  # (K,)
        return usage_metrics(counts, self.ema_count < self.dead_threshold)

    @torch.no_grad()
    def _update(self, points: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """EMA step with statistics summed over all processes, then dead-code restarts.

        Skipped (on every rank) if the summed statistics are non-finite, i.e. some rank's batch held a NaN/inf
        (or overflowed). The decision stays on the device (``torch.where``), so a step needs no host sync.
        """
        k, d = self.num_codes, self.dim
        if not self._is_initialized():
            stats = code_stats(points, codes, k)
            return usage_metrics(stats[:, d], self.ema_count < self.dead_threshold)
        stats = all_reduce_sum_(code_stats(points, codes, k))  # (K, D+1): [sums | counts], one collective
        ok = torch.isfinite(stats).all()  # the same on every rank: a NaN anywhere is in every sum
        sums, counts = stats[:, :d], stats[:, d]
        ema_count = self.ema_count * self.decay + counts * (1.0 - self.decay)
        ema_sum = self.ema_sum * self.decay + sums * (1.0 - self.decay)
        total = ema_count.sum()
        smoothed = (ema_count + self.eps) / (total + k * self.eps) * total  # (K,)
        self.ema_count.copy_(torch.where(ok, ema_count, self.ema_count))
        self.ema_sum.copy_(torch.where(ok, ema_sum, self.ema_sum))
        self.codebook.copy_(torch.where(ok, ema_sum / smoothed[:, None], self.codebook))
        dead = self.ema_count < self.dead_threshold  # (K,)
        metrics = usage_metrics(counts, dead)
        if self.dead_threshold > 0:
            self._restart(points[:, :d], dead & ok)
        return metrics

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor, dead: torch.Tensor) -> None:
        """Move ``dead`` codes onto rows of ``flat`` sampled on rank 0 (global torch RNG). One candidate row is
        drawn per code every step and taken where the code is dead, so the step needs no host sync to count
        the dead codes."""
        dead = broadcast_(dead.to(torch.uint8)).bool()  # guards against any cross-rank drift
        if rank() == 0:
            vectors = sample_rows(flat, self.num_codes)  # (K, D)
        else:
            vectors = flat.new_empty(self.num_codes, self.dim)
        broadcast_(vectors)
        reset_count = self.dead_threshold / self.decay if self.decay > 0 else self.dead_threshold
        mask = dead[:, None]  # (K, 1)
        self.codebook.copy_(torch.where(mask, vectors, self.codebook))
        self.ema_sum.copy_(torch.where(mask, vectors * reset_count, self.ema_sum))
        self.ema_count.copy_(torch.where(dead, torch.full_like(self.ema_count, reset_count), self.ema_count))

