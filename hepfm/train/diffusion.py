"""Diffusion with velocity (v) prediction on a cosine schedule (Salimans & Ho, arXiv:2202.00512).

``z_t = alpha_t x + sigma_t eps`` with ``alpha_t = cos(pi t / 2)``, ``sigma_t = sin(pi t / 2)``; the
network predicts ``v = alpha_t eps - sigma_t x``, from which ``x = alpha_t z_t - sigma_t v``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["alpha_sigma", "noise", "velocity_loss"]


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha_t, sigma_t for t in [0, 1] (shape of t)."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def noise(x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noised particles z_t and the target velocity v, both (B, N, F) and zero on padding."""
    m = mask.unsqueeze(-1).to(x.dtype)
    eps = torch.randn_like(x) * m
    a, s = (v.view(-1, 1, 1) for v in alpha_sigma(t))
    return (a * x + s * eps) * m, (a * eps - s * x) * m


def velocity_loss(v_pred: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real particles and features."""
    m = mask.unsqueeze(-1).to(v.dtype)
    return ((v_pred - v) ** 2 * m).sum() / (m.sum() * v.shape[-1]).clamp(min=1)
