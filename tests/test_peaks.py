"""Datasheet peaks: the right figure for each GPU and precision, and clear refusals (chapter 10)."""

from __future__ import annotations

import pytest
import torch

from gptcourse.peaks import (
    PEAKS,
    UnknownDeviceError,
    autocast_precision,
    datasheet_peak,
    device_peaks,
    match_device,
    matmul_precision,
    peak_flops,
    precision_dtype,
    precision_key,
    tf32_enabled,
)


@pytest.mark.parametrize(
    ("name", "precision", "expected"),
    [
        ("Tesla T4", torch.float16, 65e12),
        ("Tesla T4", torch.float32, 8.1e12),
        ("Tesla V100-SXM2-16GB", torch.float16, 125e12),
        ("Tesla V100-SXM2-32GB", "fp32", 15.7e12),
        ("Tesla V100-PCIE-16GB", torch.float16, 112e12),
        ("NVIDIA A100-SXM4-40GB", torch.bfloat16, 312e12),
        ("NVIDIA A100-SXM4-80GB", "half", 312e12),
        ("NVIDIA A100 80GB PCIe", "tf32", 156e12),
        ("NVIDIA A100-PCIE-40GB", torch.float32, 19.5e12),
        ("NVIDIA A10G", torch.bfloat16, 70e12),
        ("NVIDIA A10", "bfloat16", 125e12),
        ("NVIDIA L4", torch.bfloat16, 121e12),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
        ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
        ("NVIDIA H200", torch.bfloat16, 989e12),
        ("Tesla P100-PCIE-16GB", torch.float16, 18.7e12),
        ("Tesla P100-SXM2-16GB", torch.float16, 21.2e12),
        ("A100 SXM", "bf16", 312e12),  # a PEAKS key works too
    ],
)
def test_peak_lookup(name, precision, expected):
    assert peak_flops(name, precision) == pytest.approx(expected)


def test_every_peak_is_dense_and_sourced():
    for peaks in PEAKS.values():
        assert peaks.source.startswith("https://"), peaks.name
        fp32 = peaks.flops["fp32"]
        # Tensor cores (and the P100's packed half2) only ever add speed; TF32 sits between.
        assert all(peaks.flops[p] >= fp32 for p in peaks.flops), peaks.name
        if "tf32" in peaks.flops:
            assert fp32 <= peaks.flops["tf32"] <= peaks.flops.get("bf16", peaks.flops["fp16"]), peaks.name
        assert set(peaks.flops) | set(peaks.missing) == {"fp32", "tf32", "fp16", "bf16"}, f"{peaks.name}: say why a figure is missing"


def test_t4_refuses_bf16_and_says_what_to_do():
    with pytest.raises(ValueError, match="fp16 with a gradient scaler"):
        peak_flops("Tesla T4", torch.bfloat16)
    with pytest.raises(ValueError, match="precision='tf32'.*no tf32"):
        peak_flops("Tesla T4", "tf32")
    with pytest.raises(ValueError, match="no bf16"):
        peak_flops("Tesla P100-PCIE-16GB", "bf16")


def test_unknown_device_asks_for_the_peak():
    with pytest.raises(UnknownDeviceError, match=r"device_name='NVIDIA GeForce RTX 3090'.*peak="):
        peak_flops("NVIDIA GeForce RTX 3090", torch.bfloat16)
    with pytest.raises(UnknownDeviceError, match=r"device_name='cpu'.*measure_peak_flops"):
        peak_flops("cpu", torch.float32)
    assert peak_flops("NVIDIA GeForce RTX 3090", torch.bfloat16, peak=71e12) == 71e12


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda")])
def test_cuda_without_a_gpu_is_a_clear_error(device):
    with pytest.raises(ValueError, match=r"device_name='cuda(:1)?' names a CUDA device, but there is no CUDA GPU here.*'Tesla T4'"):
        peak_flops(device, "fp16")


def test_bad_peak_and_precision_name_the_parameter():
    with pytest.raises(ValueError, match="peak must be > 0, got -1"):
        peak_flops("Tesla T4", torch.float16, peak=-1)
    with pytest.raises(ValueError, match="peak must be a finite number"):
        peak_flops("Tesla T4", torch.float16, peak=float("inf"))
    with pytest.raises(ValueError, match=r"precision: there is no peak FLOP/s for torch.int8.*'fp16'"):
        peak_flops("Tesla T4", torch.int8)
    with pytest.raises(ValueError, match="precision"):
        precision_key("fp8")


def test_name_matching_does_not_confuse_neighbours():
    assert match_device("NVIDIA A10G") == "A10G"
    assert match_device("NVIDIA A10") == "A10"
    assert match_device("NVIDIA A100-SXM4-40GB") == "A100 SXM"
    assert match_device("NVIDIA H100 NVL") == "H100 NVL"
    assert match_device("NVIDIA H200 NVL") == "H200 NVL"
    assert match_device("Tesla V100S-PCIE-32GB") == "V100S PCIe"
    assert match_device("NVIDIA GeForce RTX 4090") is None
    assert device_peaks("Tesla T4") is PEAKS["T4"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Tesla T4", "fp16"), ("Tesla V100-SXM2-16GB", "fp16"), ("Tesla P100-PCIE-16GB", "fp16"), ("NVIDIA A100-SXM4-80GB", "bf16"), ("NVIDIA H100 80GB HBM3", "bf16")],
)
def test_autocast_precision_follows_the_table(name, expected):
    assert autocast_precision(name) == expected
    assert peak_flops(name, autocast_precision(name)) > peak_flops(name, "fp32")  # and it has a peak there


def test_precision_names_and_dtypes():
    assert precision_key("BFloat16") == "bf16" and precision_key(torch.float32) == "fp32"
    assert precision_dtype("tf32") == torch.float32  # TF32 is how matmuls compute, not how tensors are stored
    assert precision_dtype(torch.float16) == torch.float16
    assert matmul_precision("cpu", torch.float32) == "fp32"
    assert matmul_precision("cpu", torch.bfloat16) == "bf16"


@pytest.mark.parametrize("name", ["NVIDIA GH200 480GB", "NVIDIA GH200 144G HBM3e", "NVIDIA GeForce RTX 4090", "NVIDIA L40S", "NVIDIA RTX A6000"])
def test_other_gpus_get_no_figure_rather_than_a_neighbours(name):
    # A GH200 contains "H200" (and its memory is HBM3, like an H100 SXM's), but it is neither.
    assert match_device(name) is None
    assert datasheet_peak(name, "bf16") is None
    with pytest.raises(UnknownDeviceError, match=rf"device_name='{name}'.*peak="):
        peak_flops(name, "bf16")


def test_datasheet_peak_is_none_only_for_an_unknown_device():
    assert datasheet_peak("Tesla T4", torch.float16) == 65e12
    assert datasheet_peak("cpu", torch.float32) is None
    with pytest.raises(ValueError, match="fp16 with a gradient scaler"):
        datasheet_peak("Tesla T4", torch.bfloat16)  # a known GPU that cannot: still a refusal


@pytest.fixture
def fp32_settings():
    """PyTorch's fp32 matmul precision, restored after the test."""
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(("capability", "expected"), [((8, 0), "tf32"), ((9, 0), "tf32"), ((7, 5), "fp32")])
def test_the_fp32_denominator_follows_tf32(monkeypatch, fp32_settings, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    torch.set_float32_matmul_precision("highest")  # PyTorch's default: TF32 off
    assert not tf32_enabled()
    assert matmul_precision("cuda", torch.float32) == "fp32"
    torch.set_float32_matmul_precision("high")  # TF32 on, where there are TF32 units
    assert tf32_enabled()
    assert matmul_precision("cuda", torch.float32) == expected
    assert matmul_precision("cuda", torch.bfloat16) == "bf16", "16-bit work is compared with its own peak"
    assert matmul_precision("cpu", torch.float32) == "fp32"


def test_tf32_is_read_from_the_new_api_too(monkeypatch, fp32_settings):
    # PyTorch >= 2.9 also has torch.backends.cuda.matmul.fp32_precision; once it has been set,
    # reading the old allow_tf32 flag raises. tf32_enabled asks the new one first.
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip(f"torch {torch.__version__} has only the old API")
    matmul.fp32_precision = "tf32"
    assert tf32_enabled()
    matmul.fp32_precision = "ieee"
    assert not tf32_enabled()
