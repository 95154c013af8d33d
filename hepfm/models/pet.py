"""Point-Edge Transformer (PET), the OmniLearn jet foundation model.

Implements the architecture of Mikuni & Nachman, "OmniLearn: A Method to Simultaneously Facilitate
All Jet Physics Tasks", arXiv:2404.16091:

* particle embedding, with the diffusion time entering by FiLM (time = 0 for classification);
* a local kNN edge block (K neighbours, ``[x_j - x_i, x_i]`` -> MLP -> mean), applied twice, the
  first time in (deta, dphi), the second in the learned feature space;
* pre-norm transformer blocks with LayerScale;
* a class-attention classifier head (class token; jet features and time by FiLM) that also
  regresses the jet features;
* a generative head predicting the diffusion velocity ``v`` of every particle, conditioned on time,
  jet features and class label (a "null" label for classifier-free guidance).

Conventions: ``x: (B, N, F)`` particle features (:data:`hepfm.data.PARTICLE_FEATURES`, normalised),
``mask: (B, N)`` bool with True for a real particle, ``jet: (B, J)`` normalised jet features,
``t: (B,)`` diffusion time in [0, 1]. Padded particles never influence real ones (masked in kNN,
attention and pooling) and stay exactly zero, so outputs do not depend on the padded length.

Speed (see ``benchmarks/``): the first edge layer is linear, so ``W [x_j - x_i, x_i]`` is computed as
``A x_j + B x_i`` with one projection per particle instead of one per edge (the EdgeConv
decomposition), and the mean over neighbours is taken before the edge MLP's output projection.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hepfm.core.errors import OptionError
from hepfm.data.schema import JET_FEATURES, PARTICLE_FEATURES, PID_FEATURES

__all__ = ["PETConfig", "PET", "knn_indices"]

log = logging.getLogger(__name__)


@dataclass
class PETConfig:
    """Sizes and options of :class:`PET`. ``PETConfig.named("small")`` gives OmniLearn's size."""

    n_features: int = len(PARTICLE_FEATURES)  # input features per particle
    n_jet_features: int = len(JET_FEATURES)  # conditioning and regression targets
    n_classes: int = 10  # JetClass classes at pretraining; replaced when fine-tuning
    dim: int = 128  # width D of every particle representation
    n_blocks: int = 8  # transformer blocks in the backbone
    n_heads: int = 4
    mlp_ratio: int = 2  # hidden width of transformer MLPs, in units of D (OmniLearn uses 2)
    k: int = 10  # neighbours in the local edge block
    n_local: int = 2  # edge blocks; the second finds neighbours in the learned space
    n_class_blocks: int = 2  # class-attention layers in the classifier head
    n_gen_blocks: int = 2  # transformer blocks in the generative head
    time_frequencies: int = 16  # Fourier frequencies of the time embedding
    dropout: float = 0.0
    layer_scale_init: float = 1e-3  # small residual branches at init keep deep stacks stable
    pid_dropout: float = 0.3  # P(drop a jet's charge/PID features) in training: PID-less data fine-tune cleanly
    label_dropout: float = 0.1  # P(null label) in generative training, for classifier-free guidance
    generative: bool = True  # build the generative head (not needed for pure classifiers)

    @classmethod
    def named(cls, size: str, **overrides) -> PETConfig:
        """``tiny`` (CPU demo, ~0.3 M parameters), ``small`` (OmniLearn, ~2 M), ``medium`` (~10 M)."""
        sizes: dict[str, dict[str, Any]] = {
            "tiny": dict(dim=64, n_blocks=4, n_heads=4, n_class_blocks=1, n_gen_blocks=1),
            "small": dict(dim=128, n_blocks=8, n_heads=4),
            "medium": dict(dim=256, n_blocks=12, n_heads=8, n_gen_blocks=3),
        }
        if size not in sizes:
            raise OptionError("config", f"unknown PET size {size!r}; known: {', '.join(sizes)}")
        return replace(cls(**sizes[size]), **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def knn_indices(points: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``k`` nearest real neighbours of every particle (itself excluded).

    Args:
        points: (B, N, C) coordinates.
        mask: (B, N) bool, True = real particle.
        k: neighbours per particle.

    Returns:
        (idx (B, N, k) long, valid (B, N, k) bool): a jet with fewer than k+1 particles gets
        padded neighbours flagged invalid.
    """
    n = points.shape[1]
    k = min(k, max(n - 1, 1))
    if torch.compiler.is_exporting():  # ONNX has no cdist: the same distances by the matrix-product formula
        sq = (points * points).sum(-1)  # (B, N)
        dist = (sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * points @ points.transpose(1, 2)).clamp_min(0).sqrt()
    else:
        dist = torch.cdist(points, points)  # (B, N, N)
    blocked = ~mask.unsqueeze(1) | torch.eye(n, dtype=torch.bool, device=points.device).unsqueeze(0)
    dist = dist.masked_fill(blocked, float("inf"))
    d, idx = dist.topk(k, dim=-1, largest=False)  # (B, N, k)
    return idx, torch.isfinite(d) & mask.unsqueeze(-1)


def _gather(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """h: (B, N, C), idx: (B, N, k) -> (B, N, k, C)."""
    b, n, k = idx.shape
    flat = idx.reshape(b, n * k, 1).expand(-1, -1, h.shape[-1])
    return h.gather(1, flat).reshape(b, n, k, h.shape[-1])


class EdgeBlock(nn.Module):
    """Local kNN block: mean over neighbours of MLP([h_j - h_i, h_i]).

    The first layer acts on ``[h_j - h_i, h_i]`` and is linear, so it is computed as
    ``lin_j(h)_j + lin_i(h)_i`` (one projection per particle, then a gather).
    """

    def __init__(self, in_dim: int, dim: int, k: int):
        super().__init__()
        self.k = k
        self.lin_j = nn.Linear(in_dim, dim, bias=False)
        self.lin_i = nn.Linear(in_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, points: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        idx, valid = knn_indices(points, mask, self.k)  # (B, N, k)
        edge = _gather(self.lin_j(h), idx) + self.lin_i(h).unsqueeze(2)  # (B, N, k, D)
        edge = F.gelu(edge) * valid.unsqueeze(-1)
        pooled = edge.sum(2) / valid.sum(-1, keepdim=True).clamp(min=1)  # (B, N, D)
        return F.gelu(self.out(pooled)) * mask.unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class FiLM(nn.Module):
    """Feature-wise linear modulation h * (1 + scale(c)) + shift(c), the identity at init."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond).chunk(2, dim=-1)
        if h.dim() == 3:
            scale, shift = scale.unsqueeze(1), shift.unsqueeze(1)
        return h * (1 + scale) + shift


class FourierTime(nn.Module):
    """Time t in [0, 1] -> sin/cos at log-spaced frequencies -> MLP -> (B, dim)."""

    def __init__(self, n_freq: int, dim: int):
        super().__init__()
        self.register_buffer("freq", torch.exp(torch.linspace(0.0, math.log(1000.0), n_freq)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.unsqueeze(-1) * self.get_buffer("freq")  # (B, n_freq)
        return self.mlp(torch.cat([arg.sin(), arg.cos()], dim=-1))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with masked attention and LayerScale."""

    def __init__(self, cfg: PETConfig):
        super().__init__()
        d = cfg.dim
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ls1 = LayerScale(d, cfg.layer_scale_init)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.mlp_ratio * d, d)
        )
        self.ls2 = LayerScale(d, cfg.layer_scale_init)
        self.dropout = cfg.dropout

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        h = h + self.ls1(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return h + self.ls2(self.mlp(self.norm2(h)))


class ClassAttention(nn.Module):
    """Class-attention layer (CaiT): the class token attends to itself and the particles."""

    def __init__(self, cfg: PETConfig):
        super().__init__()
        d = cfg.dim
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        self.ls1 = LayerScale(d, cfg.layer_scale_init)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))
        self.ls2 = LayerScale(d, cfg.layer_scale_init)

    def forward(self, cls: torch.Tensor, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # cls: (B, 1, D), h: (B, N, D), key_mask: (B, 1, 1, N+1)
        b, n, d = h.shape
        z = self.norm1(torch.cat([cls, h], dim=1))  # (B, N+1, D)
        hd = d // self.n_heads
        q = self.q(z[:, :1]).view(b, 1, self.n_heads, hd).transpose(1, 2)
        k, v = self.kv(z).view(b, n + 1, 2, self.n_heads, hd).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (B, H, 1, hd)
        cls = cls + self.ls1(self.proj(a.transpose(1, 2).reshape(b, 1, d)))
        return cls + self.ls2(self.mlp(self.norm2(cls)))


class PET(nn.Module):
    """The Point-Edge Transformer with classifier and generative heads.

    Args:
        config: :class:`PETConfig`.
    """

    def __init__(self, config: PETConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.dim
        self.embed = nn.Sequential(nn.Linear(cfg.n_features, d), nn.GELU(), nn.Linear(d, d))
        self.time = FourierTime(cfg.time_frequencies, d)
        self.time_film = FiLM(d, d)
        self.local = nn.ModuleList([EdgeBlock(cfg.n_features if i == 0 else d, d, cfg.k) for i in range(cfg.n_local)])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_blocks)])
        self.norm = nn.LayerNorm(d)
        # classifier head
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.jet_embed = nn.Sequential(nn.Linear(cfg.n_jet_features, d), nn.GELU())
        self.cls_film = FiLM(2 * d, d)
        self.class_blocks = nn.ModuleList([ClassAttention(cfg) for _ in range(cfg.n_class_blocks)])
        self.cls_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_classes)
        self.jet_head = nn.Linear(d, cfg.n_jet_features)
        # generative head
        if cfg.generative:
            self.label_embed = nn.Embedding(cfg.n_classes + 1, d)  # last index = no label (CFG)
            self.gen_film = FiLM(3 * d, d)
            self.gen_blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_gen_blocks)])
            self.gen_norm = nn.LayerNorm(d)
            self.gen_out = nn.Linear(d, cfg.n_features)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        log.info("PET %s: %.2f M parameters", cfg, self.num_parameters() / 1e6)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def _attn_mask(mask: torch.Tensor) -> torch.Tensor:
        # (B, 1, 1, N) keys; a jet with no particle attends to its first (zero) slot instead of nothing
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(dim=1)
        return keys[:, None, None, :]

    def drop_pid(self, x: torch.Tensor) -> torch.Tensor:
        """In training, zero the charge/PID features of a random ``pid_dropout`` fraction of jets."""
        if not self.training or self.config.pid_dropout <= 0 or x.shape[-1] != len(PARTICLE_FEATURES):
            return x  # inputs without hepfm's PID features (e.g. four-momenta only) have nothing to drop
        drop = torch.rand(x.shape[0], 1, 1, device=x.device) < self.config.pid_dropout
        keep = torch.ones(x.shape[-1], device=x.device, dtype=x.dtype)
        keep[list(PID_FEATURES)] = 0
        return torch.where(drop, x * keep, x)

    def body(
        self, x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone. Returns (h (B, N, D) particle representations, temb (B, D) time embedding).

        PID dropout (in training) acts on clean jets only (``t`` None): noised jets keep their PID
        features, as the diffusion target is built from them.
        """
        m = mask.unsqueeze(-1).to(x.dtype)
        if t is None:
            x = self.drop_pid(x)
            t = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        x = x * m
        temb = self.time(t)  # (B, D)
        h = self.time_film(self.embed(x), temb) * m  # (B, N, D)
        points, feats = x[..., :2], x  # (deta, dphi) first, then the learned space
        for block in self.local:
            feats = block(points, feats, mask)  # (B, N, D)
            points = feats
        h = h + feats
        attn_mask = self._attn_mask(mask)
        for block in self.blocks:
            h = block(h, attn_mask) * m
        return self.norm(h) * m, temb

    def classify(self, h: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor | None, temb: torch.Tensor):
        """Classifier head: (logits (B, C), jet-feature regression (B, J))."""
        b = h.shape[0]
        if jet is None:
            jet = h.new_zeros(b, self.config.n_jet_features)
        cond = torch.cat([self.jet_embed(jet), temb], dim=-1)  # (B, 2D)
        cls = self.cls_film(self.cls_token.expand(b, -1, -1), cond)  # (B, 1, D)
        keys = torch.cat([mask.new_ones(b, 1), mask], dim=1)[:, None, None, :]  # (B, 1, 1, N+1)
        for block in self.class_blocks:
            cls = block(cls, h, keys)
        z = self.cls_norm(cls[:, 0])
        return self.head(z), self.jet_head(z)

    def velocity(
        self, h: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor, temb: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        """Generative head: predicted diffusion velocity v (B, N, F); ``label == n_classes`` is no label."""
        cond = torch.cat([temb, self.jet_embed(jet), self.label_embed(label)], dim=-1)
        g = self.gen_film(h, cond)
        attn_mask = self._attn_mask(mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        for block in self.gen_blocks:
            g = block(g, attn_mask) * m
        return self.gen_out(self.gen_norm(g)) * m

    def forward(self, x: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor | None = None) -> torch.Tensor:
        """Classification logits (B, C) of clean jets: x (B, N, F), mask (B, N), jet (B, J) or None."""
        h, temb = self.body(x, mask)
        return self.classify(h, mask, jet, temb)[0]

    def replace_head(self, n_classes: int) -> None:
        """A fresh classification layer for ``n_classes`` (fine-tuning); the rest is kept.

        The new layer starts at zero: every class gets the same logit, so the first updates set the
        direction of the new task instead of undoing a random one.
        """
        self.config = replace(self.config, n_classes=n_classes)
        self.head = nn.Linear(self.config.dim, n_classes).to(self.head.weight.device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def backbone_parameters(self):
        """Every parameter except the classification layer (a lower learning rate when fine-tuning)."""
        head = {id(p) for p in self.head.parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    def representation_layers(self) -> dict[str, nn.Module]:
        """The layers whose outputs represent a jet, in forward order, by their submodule names.

        ``embed``, the edge blocks ``local.i``, the transformer blocks ``blocks.i`` (per-particle outputs
        (B, N, D)) and the class-attention blocks ``class_blocks.i`` (the class token, (B, 1, D)):
        what CKA compares layer by layer (:func:`hepfm.analysis.cka.cka_between`).
        """
        return {
            "embed": self.embed,
            **{f"local.{i}": block for i, block in enumerate(self.local)},
            **{f"blocks.{i}": block for i, block in enumerate(self.blocks)},
            **{f"class_blocks.{i}": block for i, block in enumerate(self.class_blocks)},
        }

    def pool_representation(self, name: str, output: torch.Tensor, batch) -> torch.Tensor:
        """One vector per jet, (B, D) float64, from the output of the representation layer ``name``.

        Per-particle outputs (B, N, D) are averaged over the real particles of ``batch.mask`` (B, N), so
        padding never enters; a class-attention block's class token (B, 1, D) is taken as it is.
        """
        out = output.double()
        if name.startswith("class_blocks."):
            return out.reshape(out.shape[0], -1)
        mask = batch.mask.double()  # (B, N)
        return (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)  # (B, D)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"dim={c.dim}, blocks={c.n_blocks}, heads={c.n_heads}, k={c.k}, classes={c.n_classes}, "
            f"generative={c.generative}, params={self.num_parameters() / 1e6:.2f}M"
        )
