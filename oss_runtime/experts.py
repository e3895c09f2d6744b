"""Routed-only expert execution over memory-mapped MXFP4 (or dense) expert weights.

`MappedExperts` holds one layer's expert tensors as views of the mapped checkpoint files and, per
forward, computes only the experts the router picked: tokens are grouped by expert, each hit
expert is dequantized in bounded row tiles (or multiplied by the fused kernel for a few tokens)
and its output, times the routing weight, is added to the tokens it serves. `RoutedMoE` replaces
a decoder layer's ``mlp`` and keeps transformers' own router module as its ``router`` child.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from oss_runtime import mxfp4

__all__ = ["ExpertCache", "ExpertWeights", "MappedExperts", "RoutedMoE"]

if TYPE_CHECKING:
    from oss_runtime.kernel import FusedKernel


@dataclasses.dataclass(frozen=True)
class ExpertWeights:
    """One layer's expert tensors (views of the mapped files; never copied wholesale).

    MXFP4: ``gate_up = (blocks [E, 2I, H/32, 16], scales [E, 2I, H/32])`` and
    ``down = (blocks [E, H, I/32, 16], scales [E, H, I/32])``. Dense: ``gate_up = ([E, H, 2I],)``
    and ``down = ([E, I, H],)`` in transformers' orientation.
    """

    gate_up: tuple[torch.Tensor, ...]
    down: tuple[torch.Tensor, ...]
    gate_up_bias: torch.Tensor  # [E, 2I]
    down_bias: torch.Tensor  # [E, H]

    @property
    def quantized(self) -> bool:
        return len(self.gate_up) == 2

    @property
    def num_experts(self) -> int:
        return int(self.gate_up_bias.shape[0])

    def dequantized_nbytes(self, dtype: torch.dtype) -> int:
        """Bytes of one expert's two weight matrices once dequantized to ``dtype``."""
        if self.quantized:
            values = 2 * (self.gate_up[0][0].numel() + self.down[0][0].numel())
        else:
            values = self.gate_up[0][0].numel() + self.down[0][0].numel()
        return values * dtype.itemsize


class ExpertCache:
    """A byte-bounded LRU of dequantized experts, shared by all layers; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: collections.OrderedDict[Any, tuple[torch.Tensor, torch.Tensor]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def fits(self, nbytes: int) -> bool:
        return 0 < nbytes <= self.max_bytes

    def put(self, key: Any, item: tuple[torch.Tensor, torch.Tensor]) -> None:
        size = sum(t.nbytes for t in item)
        if not self.fits(size):
            return
        with self._lock:
            if key in self._items:
                return
            while self._items and self.bytes + size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= sum(t.nbytes for t in old)
            self._items[key] = item
            self.bytes += size


class MappedExperts(nn.Module):
    """Computes the routed experts of one layer from mapped weights (see module docstring)."""

    def __init__(
        self,
        weights: ExpertWeights,
        *,
        layer_idx: int,
        dtype: torch.dtype,
        limit: float = 7.0,
        alpha: float = 1.702,
        tile_rows: int = 512,
        cache: ExpertCache | None = None,
        kernel: FusedKernel | None = None,
        kernel_max_tokens: int = 4,
        int8: bool = False,
    ) -> None:
        super().__init__()
        self.w = weights
        self.layer_idx = layer_idx
        self.dtype = dtype
        self.limit, self.alpha = limit, alpha
        self.tile_rows = max(2, tile_rows - tile_rows % 2)
        self.cache = cache
        self.kernel = kernel if weights.quantized else None
        self.kernel_max_tokens = kernel_max_tokens
        #: the fused kernel rounds each expert's input to int8 per 32 values (an explicit choice)
        self.int8 = int8
        self.num_experts = weights.num_experts
        #: one token's experts run in one kernel call (the Python loop's steps cost about 0.2 ms
        #: per expert, 4 experts in each of 24 layers per token at 20b's size)
        self._one_call = (self.kernel is not None and kernel_max_tokens >= 1
                          and getattr(self.kernel, "has_experts_one_token", False))
        # biases are small ([E, 2I] + [E, H]); keep them in the compute dtype and in float32
        self._bias = {
            dt: (weights.gate_up_bias.to(dt), weights.down_bias.to(dt))
            for dt in {dtype, torch.float32}
        }

    def extra_repr(self) -> str:
        kind = "mxfp4" if self.w.quantized else "dense"
        int8 = ", int8 inputs" if self.int8 and self.kernel is not None else ""
        return (f"layer={self.layer_idx}, experts={self.num_experts}, {kind}, "
                f"kernel={self.kernel is not None}{int8}")

    # -- per-expert linear maps ---------------------------------------------------------------
    def _full(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole dequantized ``(W_gu [2I, H], W_d [H, I])`` of expert ``e`` in the compute dtype."""
        if self.w.quantized:
            gate_up, down = self.w.gate_up, self.w.down
            return self._dequant(gate_up[0], gate_up[1], e), self._dequant(down[0], down[1], e)
        return self.w.gate_up[0][e].t().to(self.dtype), self.w.down[0][e].t().to(self.dtype)

    def _dequant(self, blocks: torch.Tensor, scales: torch.Tensor, e: int) -> torch.Tensor:
        out = torch.empty(blocks.shape[1], blocks.shape[2] * 32, dtype=self.dtype)
        if self.kernel is not None:
            self.kernel.dequant(blocks[e], scales[e], out)
        else:
            mxfp4.dequantize_into(blocks[e], scales[e], out)
        return out

    def _tiled(
        self, x: torch.Tensor, packed: tuple[torch.Tensor, ...], e: int, bias: torch.Tensor
    ) -> torch.Tensor:
        """``x @ W_e.T + bias`` with W_e dequantized ``tile_rows`` output rows at a time."""
        if self.w.quantized:
            blocks, scales = packed[0][e], packed[1][e]
            rows = blocks.shape[0]
        else:
            dense = packed[0][e]  # [in, out]
            rows = dense.shape[1]
        out = torch.empty(x.shape[0], rows, dtype=self.dtype)
        step = self.tile_rows
        tile = torch.empty(min(step, rows), x.shape[1], dtype=self.dtype)
        for r0 in range(0, rows, step):
            r1 = min(r0 + step, rows)
            if self.w.quantized:
                w = tile[: r1 - r0]
                if self.kernel is not None:
                    self.kernel.dequant(blocks[r0:r1], scales[r0:r1], w)
                else:
                    mxfp4.dequantize_into(blocks[r0:r1], scales[r0:r1], w)
            else:
                w = tile[: r1 - r0].copy_(dense[:, r0:r1].t())
            out[:, r0:r1] = F.linear(x, w, bias[r0:r1])
        return out

    def expert_forward(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """One expert on tokens ``x [n, H]`` (compute dtype) -> ``[n, H]``."""
        gu_bias, down_bias = self._bias[self.dtype]
        if self.kernel is not None and x.shape[0] <= self.kernel_max_tokens:
            bias32 = self._bias[torch.float32]
            xf = x.to(torch.float32).contiguous()
            gu = self.kernel.linear(xf, self.w.gate_up[0][e], self.w.gate_up[1][e], bias32[0][e],
                                    int8=self.int8)
            act = mxfp4.swiglu(gu, self.limit, self.alpha).contiguous()
            y: torch.Tensor = self.kernel.linear(
                act, self.w.down[0][e], self.w.down[1][e], bias32[1][e], int8=self.int8
            )
            return y.to(self.dtype)
        full = None
        if self.cache is not None:
            key = (id(self), e)
            full = self.cache.get(key)
            if full is None and self.cache.fits(self.w.dequantized_nbytes(self.dtype)):
                full = self._full(e)
                self.cache.put(key, full)
        if full is not None:
            gu = F.linear(x, full[0], gu_bias[e])
            act = mxfp4.swiglu(gu, self.limit, self.alpha)
            return F.linear(act, full[1], down_bias[e])
        gu = self._tiled(x, self.w.gate_up, e, gu_bias[e])
        act = mxfp4.swiglu(gu, self.limit, self.alpha)
        return self._tiled(act, self.w.down, e, down_bias[e])

    def forward(
        self,
        hidden_states: torch.Tensor,
        router_indices: torch.Tensor,
        routing_weights: torch.Tensor,
    ) -> torch.Tensor:
        """``hidden [N, H]``, ``indices [N, k]``, ``weights [N, k]`` (top-k softmax) -> ``[N, H]``."""
        x = hidden_states.to(self.dtype)
        out = torch.zeros_like(hidden_states)
        k = router_indices.shape[-1]
        if x.shape[0] == 1 and self._one_call:  # decode: the loop below in one kernel call
            bias32 = self._bias[torch.float32]
            self.kernel.experts_one_token(  # type: ignore[union-attr]
                x, router_indices, routing_weights, self.w.gate_up, bias32[0], self.w.down,
                bias32[1], out, limit=self.limit, alpha=self.alpha, int8=self.int8)
            return out
        if x.shape[0] == 1:  # one token (decode): no grouping, the same sums in the same order
            ids = router_indices[0].tolist()
            for j in sorted(range(k), key=ids.__getitem__):
                y = self.expert_forward(ids[j], x)
                out += (y * routing_weights[:, j : j + 1]).to(out.dtype)
            return out
        flat = router_indices.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        tokens = order // k
        weights = routing_weights.reshape(-1)[order]
        start = 0
        for e, n in enumerate(counts):  # ascending experts, like transformers' expert_hit loop
            if n == 0:
                continue
            sel = tokens[start : start + n]
            y = self.expert_forward(e, x.index_select(0, sel))
            out.index_add_(0, sel, (y * weights[start : start + n, None]).to(out.dtype))
            start += n
        return out


class RoutedMoE(nn.Module):
    """Drop-in for a gpt-oss decoder layer's ``mlp``: transformers' router + `MappedExperts`."""

    def __init__(self, router: nn.Module, experts: MappedExperts) -> None:
        super().__init__()
        self.router = router
        self.experts = experts

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq, hidden = hidden_states.shape
        x = hidden_states.reshape(-1, hidden)
        routed = self.router(x)
        if len(routed) == 3:  # transformers 5: (logits, top-k scores, indices)
            _, scores, indices = routed
        else:  # transformers 4.56/4.57: (dense scattered scores [N, E], indices)
            dense, indices = routed
            scores = dense.gather(1, indices)
        out = self.experts(x, indices, scores)
        return out.reshape(batch, seq, hidden), scores
