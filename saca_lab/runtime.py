"""Process-level tuning for training and inference commands, and the hardware-dependent
precision (``train.precision: auto``) and memory format (``train.channels_last: auto``).

glibc's malloc serves blocks above its mmap threshold with fresh mmap'd pages, so every large
activation is mapped, page-faulted and unmapped again on each step. Raising the threshold keeps
them on the heap; measured here, 2D training steps ran ~2x and inference ~3x faster
(BENCHMARKS.md, "big heap" columns). Applied by the CLI's train/predict commands only, never on
import; set ``SACA_LAB_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 31) -> bool:
    """Raise glibc's mmap and trim thresholds; returns False where that is not possible."""
    if os.environ.get("SACA_LAB_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


# --- numeric precision and memory format -------------------------------------------------------
#
# bf16 mixed precision only pays where the device computes in bf16 natively. A CPU without
# AVX512-BF16 or AMX emulates it: on a 2-core AVX2 machine a 2D TrCSL step took ~4.0 s in
# bf16 + channels_last against ~2.0-2.5 s in fp32 (issue 12). ``torch.ops.mkldnn.
# _is_mkldnn_bf16_supported()`` only checks AVX-512 and is True on such emulating CPUs, so it is
# not the probe. channels_last was measured faster only together with native bf16 on a CPU, for
# the 2D (image) networks.

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"
NATIVE_BF16_ENV = "SACA_LAB_NATIVE_BF16"


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles).

    ``SACA_LAB_NATIVE_BF16=0`` (or ``1``) overrides the probe, e.g. to time the fp32 path that
    a CPU without bf16 would take.
    """
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in (AUTO, "gpu", "cuda") and torch.cuda.is_available()


def native_bf16(accelerator: str = AUTO) -> bool:
    """Whether the device Lightning picks for ``accelerator`` runs bf16 natively.

    CUDA counts only without emulation (``torch.cuda.is_bf16_supported(including_emulation=
    False)``: Ampere and later); other accelerators (MPS, TPU, ...) are treated as not native.
    """
    import torch

    if _uses_cuda(accelerator):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if accelerator in (AUTO, "cpu"):
        return cpu_native_bf16()
    return False


def resolve_precision(precision: str, accelerator: str = AUTO) -> str:
    """Lightning's ``precision`` for ``train.precision``: ``auto`` becomes ``bf16-mixed`` where
    bf16 is native, ``32-true`` elsewhere; any other value is returned unchanged."""
    if precision != AUTO:
        return str(precision)
    return BF16 if native_bf16(accelerator) else FP32


def resolve_channels_last(channels_last: bool | str, precision: str, input_kind: str,
                          accelerator: str = AUTO) -> bool:
    """``train.channels_last``: ``auto`` is True only for 2D inputs in bf16 on a CPU with native
    bf16 (``precision`` is the resolved one); True or False is returned unchanged."""
    if channels_last != AUTO:
        return bool(channels_last)
    on_cpu = accelerator == "cpu" or (accelerator == AUTO and not _uses_cuda(accelerator))
    return input_kind == "image_2d" and precision == BF16 and on_cpu and cpu_native_bf16()


def resolve_training(train: dict, input_kind: str) -> tuple[str, bool]:
    """(precision, channels_last) that a run of the ``train`` config section uses here."""
    accelerator = str(train.get("accelerator", AUTO))
    precision = resolve_precision(train["precision"], accelerator)
    return precision, resolve_channels_last(train["channels_last"], precision, input_kind, accelerator)


def describe_auto_precision(accelerator: str = AUTO) -> str:
    """One line for reports: what ``auto`` resolves to on this machine, and why."""
    import torch

    if _uses_cuda(accelerator):
        device = f"CUDA {torch.cuda.get_device_name(0)}"
    elif accelerator in (AUTO, "cpu"):
        forced = os.environ.get(NATIVE_BF16_ENV)
        device = ("CPU, native bf16 forced " + ("on" if forced == "1" else "off")
                  + f" by {NATIVE_BF16_ENV}") if forced in ("0", "1") else (
            "CPU with AVX512-BF16/AMX" if cpu_native_bf16() else "CPU without native bf16")
    else:
        device = accelerator
    precision = resolve_precision(AUTO, accelerator)
    layout = (", channels_last for 2D models" if resolve_channels_last(AUTO, precision, "image_2d",
                                                                        accelerator) else "")
    return f"auto -> {precision} ({device}{layout})"


# --- several devices (``train.devices``, ``train.strategy``) ----------------------------------
#
# Lightning's own ``auto`` for several devices is ``ddp``, whose launcher re-runs the launching
# command (``sys.argv``) once per extra rank. That suits a training script, not a library call:
# inside pytest it would re-run the test session, inside a sweep worker or ``reproduce`` the whole
# sweep or reproduction. ``ddp_spawn`` starts the ranks inside ``Trainer.fit`` and hands the
# trained weights back to the calling process, which then tests and logs once. Its cost is the
# start-up of the ranks (seconds) and pickling the module and data, small for our data sets.

SPAWN = "ddp_spawn"


def device_count(devices, accelerator: str = AUTO) -> int:
    """How many devices ``train.devices`` asks for: a list's length, an integer, or for ``-1`` /
    ``"auto"`` every visible GPU (one CPU device for ``"auto"`` on a CPU, as Lightning does)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and devices.strip() not in (AUTO, "-1"):
        parts = [p for p in devices.split(",") if p.strip()]
        return len(parts) if "," in devices else int(devices)
    if devices in (AUTO, -1, "-1"):
        import torch

        if _uses_cuda(accelerator):
            return torch.cuda.device_count()
        return (os.cpu_count() or 1) if devices in (-1, "-1") else 1
    return int(devices)


def resolve_strategy(strategy: str, devices=1, accelerator: str = AUTO) -> str:
    """Lightning's ``strategy`` for ``train.strategy``: ``auto`` becomes ``ddp_spawn`` when
    ``train.devices`` asks for more than one device (see above), and stays ``auto`` otherwise;
    any other value is returned unchanged."""
    if strategy != AUTO:
        return str(strategy)
    return SPAWN if device_count(devices, accelerator) > 1 else AUTO
