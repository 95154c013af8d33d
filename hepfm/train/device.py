"""Devices: ``auto`` picks the best available, and a device asked for by name must exist."""

from __future__ import annotations

import os

import torch

from hepfm.core.errors import OptionError

__all__ = ["resolve_device", "check_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu. ``cuda`` without an index is this rank's GPU under
    torchrun (``LOCAL_RANK``), else the first."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        dev = check_device(device)
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    else:
        return torch.device("cpu")
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev


def check_device(device: str) -> torch.device:
    """The device called ``device``, which must be usable here.

    Raises:
        OptionError: an unknown device name, or a GPU this machine does not have.
    """
    if device == "auto":
        return resolve_device(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise OptionError("device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("device", f"{device!r} asked for, but CUDA is not available here; use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise OptionError("device", f"{device!r} asked for, but this machine has {n} GPU(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError("device", f"{device!r} asked for, but MPS is not available here; use auto or cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise OptionError("device", f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev
