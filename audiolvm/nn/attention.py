"""Causal self-attention with rotary positions, a preallocated KV cache, and pre-LayerNorm blocks.

Shapes: activations are channels-last ``Tensor[B x T x C]``; per-head tensors are
``Tensor[B x nh x T x hs]`` with ``C = nh * hs``.

A full (uncached) forward attends causally with ``F.scaled_dot_product_attention(is_causal=True)``.
With a :class:`KVCache` the new positions continue the cached ones: rotary positions start at the
cache length (absolute positions), keys and values are written into the cache, and the queries attend
to every cached position plus the causal part of their own chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, "rotate half" convention) over the head dimension.

    ``forward(x, offset)`` rotates ``x : Tensor[B x nh x T x hs]`` as if its positions were
    ``offset, ..., offset + T - 1``, so a cached step at position ``p`` gets the same rotation as
    position ``p`` of a full forward.
    """

    inv_freq: torch.Tensor  # buffer (hs/2,), registered in __init__

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise UsageError(f"RotaryEmbedding: head_dim must be even, got {head_dim}; change dim or heads")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hs/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = x.shape[-2]
        pos = torch.arange(offset, offset + t, device=x.device, dtype=torch.float32)  # (T,)
        freqs = torch.outer(pos, self.inv_freq)  # (T, hs/2)
        angles = torch.cat([freqs, freqs], dim=-1)  # (T, hs)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)  # 2 x (B, nh, T, hs/2)
        rotated = torch.cat([-x2, x1], dim=-1)  # (B, nh, T, hs)
        return x * cos + rotated * sin


class KVCache:
    """Preallocated keys and values of every layer: ``k[i], v[i] : Tensor[B x nh x T_max x hs]``.

    ``length`` counts the positions already written (shared by all layers). A forward over ``T`` new
    positions writes each layer's keys and values at ``[length, length + T)`` via :meth:`update`, and
    the caller calls :meth:`advance` once after the last layer.
    """

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        shape = (batch, heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.max_len = max_len
        self.length = 0

    def reset(self) -> None:
        """Forget every cached position (the buffers are kept and overwritten)."""
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the cache tensors in bytes."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v : Tensor[B x nh x T x hs]`` after the cached positions of ``layer``; return that
        layer's keys and values so far, ``Tensor[B x nh x (length + T) x hs]`` (views, no copy)."""
        end = self.length + k.shape[-2]
        if end > self.max_len:
            raise UsageError(
                f"KVCache: {end} positions exceed max_len={self.max_len}; call reset() (or slide the window) "
                "before the cache is full, or allocate a longer cache"
            )
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, t: int) -> None:
        """Mark ``t`` more positions as written (after every layer has called :meth:`update`)."""
        self.length += t


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE: ``Tensor[B x T x C]`` -> ``Tensor[B x T x C]``."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise UsageError(f"CausalSelfAttention: dim={dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = RotaryEmbedding(dim // heads)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """``x : Tensor[B x T x C]``; with ``cache`` the T positions follow the ``cache.length`` cached ones."""
        b, t, c = x.shape
        offset = cache.length if cache is not None else 0
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 x (B, T, C)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        q, k = self.rope(q, offset), self.rope(k, offset)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, offset + T, hs)
        y = _attend(q, k, v, offset, self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        return self.resid_drop(self.proj(y))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int, dropout: float) -> torch.Tensor:
    """Causal attention of ``q : Tensor[B x nh x T x hs]`` (positions ``offset + i``) over
    ``k, v : Tensor[B x nh x (offset + T) x hs]`` -> ``Tensor[B x nh x T x hs]``."""
    t = q.shape[-2]
    if offset == 0:  # no cached prefix: the standard lower-triangular mask
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=t > 1)
    if t == 1:  # a single query at the end sees every key
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    # query i sits at position offset + i and sees keys 0 .. offset + i (is_causal would align top-left)
    mask = torch.ones(t, offset + t, dtype=torch.bool, device=q.device).tril(diagonal=offset)  # (T, L + T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``; ``Tensor[B x T x C]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class CausalTransformer(nn.Module):
    """A stack of :class:`TransformerBlock` and a final LayerNorm: ``Tensor[B x T x C]`` -> same shape.

    Position t of the output depends on input positions ``<= t`` only. With a ``cache`` the input
    continues the cached positions and the cache is advanced by ``T``.
    """

    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual output projections scaled by 1/sqrt(2L)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for block in cast("Iterable[TransformerBlock]", self.blocks):
            for proj in (block.attn.proj, cast(nn.Linear, block.mlp[2])):
                nn.init.normal_(proj.weight, std=0.02 / (2 * len(self.blocks)) ** 0.5)

    def make_cache(self, batch: int, max_len: int, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences of up to ``max_len`` positions."""
        p = self.ln_f.weight
        return KVCache(len(self.blocks), batch, self.heads, max_len, self.dim // self.heads,
                       dtype or p.dtype, device or p.device)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.ln_f(x)
