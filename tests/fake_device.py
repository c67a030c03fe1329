"""A pytest plugin that runs the suite as if on another CPU, to prove no test depends on the host.

Inactive unless loaded with `-p fake_device` (tests/ on the path), and then driven by env vars:

    WM_FAKE_DEVICE_NAME="Intel(R) Xeon(R) Processor" PYTHONPATH=tests python -m pytest -p fake_device -q
    WM_FAKE_CPU_FEATURES=avx2,avx512_bf16,amx   the instruction sets the device record reports
                                                 (any of avx2, avx512_bf16, amx; "" for none)

WM_FAKE_DEVICE_NAME replaces the CPU model name everywhere (device.cpu_model, hence every
device_record and device_name). WM_FAKE_CPU_FEATURES replaces torch's CPU probes
(torch.cpu._is_*_supported, torch.backends.cpu.get_cpu_capability), so the package's own probe
code runs unchanged and reports the fake CPU.

Nothing in the package knows about this file: it patches the package's own functions for the
whole session (from pytest_configure, before the test modules are imported), as a test's
monkeypatch would. A test can fake a CPU for itself with `fake_cpu(monkeypatch, name, features)`.
"""

from __future__ import annotations

import os

import pytest

FEATURES = ("avx2", "avx512_bf16", "amx")
PROBES = {"avx2": "_is_avx2_supported", "avx512_bf16": "_is_avx512_bf16_supported", "amx": "_is_amx_tile_supported"}


_PATCH: list = []


def fake_cpu(mp: pytest.MonkeyPatch, name: str | None = None, features: str | None = None) -> None:
    """Make the package see another CPU: its model name and/or its instruction sets ("avx2,amx")."""
    import torch

    import wmhelpers.device as dev

    if name is not None:
        mp.setattr(dev, "cpu_model", lambda: name)
    if features is not None:
        have = {f.strip() for f in features.split(",") if f.strip()}
        unknown = have - set(FEATURES)
        if unknown:
            raise pytest.UsageError(f"WM_FAKE_CPU_FEATURES: unknown {sorted(unknown)}; choose from {FEATURES}")
        for feature, probe in PROBES.items():  # torch's own probes, so the package's code runs unchanged
            mp.setattr(torch.cpu, probe, (lambda on: lambda: on)(feature in have), raising=False)
        isa = "AVX512" if have & {"avx512_bf16", "amx"} else "AVX2" if "avx2" in have else "DEFAULT"
        mp.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)


def pytest_configure(config):
    """Patch before collection, so module-level records (tests/test_wallclock.py's HERE) see it too."""
    name = os.environ.get("WM_FAKE_DEVICE_NAME")
    features = os.environ.get("WM_FAKE_CPU_FEATURES")
    if name is None and features is None:
        return
    mp = pytest.MonkeyPatch()
    _PATCH.append(mp)
    fake_cpu(mp, name, features)


def pytest_unconfigure(config):
    while _PATCH:
        _PATCH.pop().undo()


def pytest_report_header(config):
    name, features = os.environ.get("WM_FAKE_DEVICE_NAME"), os.environ.get("WM_FAKE_CPU_FEATURES")
    if name is not None or features is not None:
        return f"fake device: CPU name {name!r}, CPU features {features!r} (tests/fake_device.py)"
    return None
