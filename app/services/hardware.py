"""GPU telemetry (nvidia-ml-py) and CPU/RAM (psutil). Without an NVIDIA GPU or driver the
snapshot says so in words; it never raises."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil
from pydantic import BaseModel, Field


class GpuInfo(BaseModel):
    index: int
    name: str
    utilization_pct: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None


class HardwareSnapshot(BaseModel):
    ts: float = Field(default_factory=time.time)
    gpus: list[GpuInfo] = Field(default_factory=list)
    gpu_status: str = ""  # "ok" or why there are none, in words
    cpu_pct: float
    cpu_count: int
    ram_used_mb: float
    ram_total_mb: float


def _read_gpus() -> tuple[list[GpuInfo], str]:
    try:
        import pynvml
    except ImportError:
        return [], "No NVIDIA GPU found (nvidia-ml-py is not installed)."
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded...
        return [], "No NVIDIA GPU found (no NVIDIA driver on this machine)."
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return [], "No NVIDIA GPU found."
        return [_read_gpu(pynvml, i) for i in range(count)], "ok"
    except Exception as exc:
        return [], f"NVIDIA GPU telemetry is unavailable: {exc}"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _read_gpu(nvml: Any, index: int) -> GpuInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    info = GpuInfo(index=index, name=name.decode() if isinstance(name, bytes) else str(name))
    # Each reading may be unsupported on a given board: keep the others.
    with contextlib.suppress(Exception):
        info.utilization_pct = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    with contextlib.suppress(Exception):
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        info.memory_used_mb = mem.used / 2**20
        info.memory_total_mb = mem.total / 2**20
    with contextlib.suppress(Exception):
        info.temperature_c = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
    with contextlib.suppress(Exception):
        info.power_w = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    return info


def snapshot() -> HardwareSnapshot:
    gpus, status = _read_gpus()
    mem = psutil.virtual_memory()
    return HardwareSnapshot(
        gpus=gpus,
        gpu_status=status,
        cpu_pct=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count() or 1,
        ram_used_mb=(mem.total - mem.available) / 2**20,
        ram_total_mb=mem.total / 2**20,
    )
