"""Causal transformer prior over one level's codes (Jukebox-style), with KV-cached windowed sampling.

Inputs are shifted right behind a learned start embedding: input position p carries code ``p - 1``
(the start token at p = 0) and its logits predict code p, so every code, the first included, is
predicted. Positions are rotary (relative to the window), the optional label embedding is added to
every input position, and subclasses add further per-position conditioning through
:meth:`CausalTransformerPrior.cond_features` (the upsampler adds the upper level's codes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from audiolvm.core.errors import UsageError
from audiolvm.models.priors.base import Cond, Prior
from audiolvm.models.priors.sampling import sample_logits
from audiolvm.nn.attention import CausalTransformer, KVCache
from audiolvm.nn.mode import eval_mode


def _window(feats: torch.Tensor | None, start: int, end: int) -> torch.Tensor | None:
    """Positions ``[start, end)`` of per-position features ``Tensor[B x L x C]``; global features
    ``Tensor[B x 1 x C]`` (or ``None``) apply to every position and are returned as they are."""
    if feats is None or feats.shape[1] == 1:
        return feats
    return feats[:, start:end]  # (B, end - start, C)


class CausalTransformerPrior(Prior):
    """Decoder-only transformer prior ``p(c_0, ..., c_{N-1} | label)`` over ``num_codes`` codes.

    ``context`` is the longest sequence :meth:`logits` accepts and the window of :meth:`sample`;
    ``num_labels > 0`` adds a label embedding (``cond["label"] : LongTensor[B]`` then required).
    """

    def __init__(self, num_codes: int, context: int = 2048, dim: int = 256, layers: int = 4, heads: int = 4,
                 mlp_ratio: int = 4, dropout: float = 0.0, num_labels: int = 0) -> None:
        super().__init__()
        if context < 2:
            raise UsageError(f"CausalTransformerPrior: context must be >= 2, got {context}")
        self.num_codes, self.context, self.dim, self.num_labels = num_codes, context, dim, num_labels
        self.tok = nn.Embedding(num_codes, dim)
        self.start = nn.Parameter(0.02 * torch.randn(dim))
        self.label_emb = nn.Embedding(num_labels, dim) if num_labels > 0 else None
        self.drop = nn.Dropout(dropout)
        self.transformer = CausalTransformer(dim, layers, heads, mlp_ratio, dropout)
        self.head = nn.Linear(dim, num_codes, bias=False)
        for emb in (self.tok, self.label_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)

    # ---- conditioning -------------------------------------------------------------------------
    def cond_features(self, cond: Cond, batch: int, length: int) -> torch.Tensor | None:
        """Conditioning added to the input embeddings: ``Tensor[B x 1 x C]`` (same for every position),
        ``Tensor[B x length x C]`` (per position; position p conditions the prediction of code p) or
        ``None``. Validates ``cond``; this class uses ``cond["label"]`` only (ignored if ``num_labels == 0``)."""
        if self.label_emb is None:
            return None
        label = None if cond is None else cond.get("label")
        if label is None:
            raise UsageError(
                f"cond['label'] is required: this prior was built with num_labels={self.num_labels}; pass "
                "cond={'label': LongTensor[B]} (one class id per sequence) or build it with num_labels=0"
            )
        if label.shape != (batch,) or label.is_floating_point():
            raise UsageError(f"cond['label'] must be a LongTensor[B] with B={batch}, got "
                             f"{label.dtype} of shape {tuple(label.shape)}")
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= self.num_labels):
            raise UsageError(f"cond['label'] holds ids outside [0, {self.num_labels}): "
                             f"min {int(label.min())}, max {int(label.max())}")
        return self.label_emb(label.long())[:, None]  # (B, 1, C)

    # ---- teacher-forced logits ----------------------------------------------------------------
    def input_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """Shifted input ``[start, c_0, ..., c_{N-2}]`` embedded: ``LongTensor[B x N]`` -> ``Tensor[B x N x C]``."""
        b = codes.shape[0]
        start = self.start.expand(b, 1, self.dim)  # (B, 1, C)
        return torch.cat([start, self.tok(codes[:, :-1].long())], dim=1)  # (B, N, C)

    def logits_from_embeddings(self, h: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """Logits ``Tensor[B x N x K]`` from shifted input embeddings ``h : Tensor[B x N x C]`` (as from
        :meth:`input_embeddings`); ``logits[:, t]`` depends on ``h[:, :t + 1]`` only."""
        n = h.shape[1]
        if n > self.context:
            raise UsageError(
                f"codes: length {n} exceeds the prior's context {self.context}; evaluate in windows of at most "
                f"{self.context} codes (e.g. sum log_prob over crops) or build the prior with a longer context"
            )
        return self._run(h, self.cond_features(cond, h.shape[0], n), None)

    def logits(self, codes: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """Next-code logits ``Tensor[B x N x K]`` for ``codes : LongTensor[B x N]`` (N <= context);
        ``logits[:, t]`` is the distribution of code t given codes < t and ``cond``.

        ``log_prob``/``loss`` (from :class:`Prior`) therefore also need N <= context: longer sequences are
        scored by the caller in windows (a clear error says so)."""
        return self.logits_from_embeddings(self.input_embeddings(codes), cond)

    def _run(self, h: torch.Tensor, feats: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        """``h : Tensor[B x T x C]`` (+ ``feats``) through the transformer -> logits ``Tensor[B x T x K]``."""
        if feats is not None:
            h = h + feats
        return self.head(self.transformer(self.drop(h), cache))

    # ---- incremental decoding -----------------------------------------------------------------
    def make_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` (default: context) positions."""
        return self.transformer.make_cache(batch, min(max_len or self.context, self.context))

    def forward_step(self, codes: torch.Tensor, cache: KVCache, cond: Cond = None) -> torch.Tensor:
        """Feed the next codes ``LongTensor[B x T]`` of the sequence through the KV cache; return logits for
        the new positions, ``Tensor[B x T' x K]``.

        Cache position p holds the input that predicts code p. On an empty cache the start token is
        consumed first (T' = T + 1: logits for codes 0..T); otherwise T' = T and, with L cached positions,
        ``result[:, i]`` predicts code ``L + i``. Pass ``codes[:, :0]`` to an empty cache to get the logits
        of code 0 alone. Equal to :meth:`logits` up to float rounding. ``cond`` is re-validated and its
        features recomputed at each call (for the upsampler, the conv stack over the whole upper sequence);
        :meth:`sample` computes them once.
        """
        b = codes.shape[0]
        h = self.tok(codes.long())  # (B, T, C)
        if cache.length == 0:
            h = torch.cat([self.start.expand(b, 1, self.dim), h], dim=1)  # (B, T + 1, C)
        end = cache.length + h.shape[1]
        if end > self.context:
            raise UsageError(f"forward_step: {end} positions exceed the context {self.context}; "
                             "reset the cache and re-prime with the most recent codes (see sample)")
        feats = _window(self.cond_features(cond, b, end), cache.length, end)
        return self._run(h, feats, cache)

    # ---- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, length: int | tuple[int, ...], cond: Cond = None, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
               *, prime: torch.Tensor | None = None, window_overlap: int | None = None,
               progress: bool = True, use_cache: bool = True) -> torch.Tensor:
        """KV-cached ancestral sampling of ``LongTensor[n x length]``; every draw uses ``generator``.

        ``prime : LongTensor[n x P]`` (P <= length) gives the first P codes to continue. Beyond the
        context the window slides: when it is full it moves by ``context - window_overlap`` codes
        (default overlap ``context // 2``) and the cache is re-primed with the start token followed by
        the last ``window_overlap`` codes, positions counted from the window start. The model runs in
        eval mode (dropout off) and is restored afterwards; ``progress`` shows a tqdm bar in tokens/s.
        ``use_cache=False`` recomputes the whole window at every step instead of using the KV cache: the
        same draws up to float rounding, much slower; it is the baseline of ``benchmarks/bench_sampling.py``.
        """
        length, overlap = self._check_sample_args(n, length, prime, window_overlap)

        def pick(logits: torch.Tensor) -> torch.Tensor:  # (n, K) -> (n,)
            return sample_logits(logits, temperature, top_k, top_p, generator)

        with eval_mode(self):
            return self._sample(n, length, cond, prime, overlap, pick, progress, use_cache)

    def _sample(self, n: int, length: int, cond: Cond, prime: torch.Tensor | None, overlap: int,
                pick: Callable[[torch.Tensor], torch.Tensor], progress: bool, use_cache: bool = True) -> torch.Tensor:
        out = torch.zeros(n, length, dtype=torch.long, device=self.start.device)  # (n, length)
        t = 0 if prime is None else prime.shape[1]  # next code to draw
        if prime is not None and t:
            out[:, :t] = prime
        if t == length:
            return out
        feats = self.cond_features(cond, n, length)  # computed once, sliced per window
        cache = self.make_cache(n, length) if use_cache else None
        s = 0 if t < self.context else t - overlap  # window start: window position j is code s + j
        logits = self._prime_window(out, s, t, feats, cache)  # (n, K) for code t
        with tqdm(total=n * (length - t), disable=not progress, unit="tok", unit_scale=True,
                  desc=f"sampling {n}x{length}", dynamic_ncols=True) as bar:
            while t < length:
                out[:, t] = pick(logits)
                t += 1
                bar.update(n)
                if t == length:
                    break
                if t - s >= self.context:  # window full: slide and re-prime with the tail
                    s = t - overlap
                    logits = self._prime_window(out, s, t, feats, cache)
                elif cache is None:  # baseline: recompute the window
                    logits = self._prime_window(out, s, t, feats, None)
                else:
                    logits = self._run(self.tok(out[:, t - 1 : t]), _window(feats, t, t + 1), cache)[:, -1]
        return out

    def _prime_window(self, out: torch.Tensor, s: int, t: int, feats: torch.Tensor | None,
                      cache: KVCache | None) -> torch.Tensor:
        """Reset ``cache`` (if any) and feed ``[start, out[:, s:t]]`` (window positions 0..t-s); return the
        logits ``Tensor[n x K]`` of code t."""
        if cache is not None:
            cache.reset()
        n = out.shape[0]
        h = torch.cat([self.start.expand(n, 1, self.dim), self.tok(out[:, s:t])], dim=1)  # (n, t - s + 1, C)
        return self._run(h, _window(feats, s, t + 1), cache)[:, -1]

    def _check_sample_args(self, n: int, length: int | tuple[int, ...], prime: torch.Tensor | None,
                           window_overlap: int | None) -> tuple[int, int]:
        """Validate the sampling arguments; return ``(length, window overlap)``."""
        if not isinstance(length, int) or length < 1:
            raise UsageError(f"length must be a positive int (this prior models 1-D sequences), got {length!r}")
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        overlap = self.context // 2 if window_overlap is None else window_overlap
        if not 0 <= overlap < self.context:
            raise UsageError(f"window_overlap must be in [0, context={self.context}), got {overlap}")
        if prime is not None:
            if prime.dim() != 2 or prime.shape[0] != n or prime.shape[1] > length or prime.is_floating_point():
                raise UsageError(f"prime must be a LongTensor[n x P] with n={n} and P <= length={length}, got "
                                 f"{prime.dtype} of shape {tuple(prime.shape)}")
            if prime.numel() and (int(prime.min()) < 0 or int(prime.max()) >= self.num_codes):
                raise UsageError(f"prime holds codes outside [0, {self.num_codes}); was it encoded with a "
                                 "different codebook size?")
        return length, overlap
