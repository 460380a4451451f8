"""Where the embedding model runs: device choice, precision, batch sizes, and their errors.

The machines torch could find are described by :class:`Accelerators`; CI has no GPU,
so GPU machines are described, while the CPU-only case is also checked against the
real torch installed here.
"""

from __future__ import annotations

import pytest

from weave_stream.config import load_settings
from weave_stream.errors import ConfigError
from weave_stream.ops.embed_device import (
    CPU_TOKEN_BUDGET,
    GPU_TOKEN_BUDGET,
    Accelerators,
    plan_device,
    plan_for,
)

CPU_ONLY = Accelerators(cuda_devices=0, cuda_build=None, mps=False, torch="2.13.0+cpu")
TWO_GPUS = Accelerators(cuda_devices=2, cuda_build="12.8", mps=False, torch="2.13.0+cu128")
DRIVERLESS = Accelerators(cuda_devices=0, cuda_build="12.8", mps=False, torch="2.13.0+cu128")
APPLE = Accelerators(cuda_devices=0, cuda_build=None, mps=True, torch="2.13.0")


@pytest.mark.parametrize(
    ("asked", "found", "device"),
    [
        ("auto", CPU_ONLY, "cpu"),
        ("auto", TWO_GPUS, "cuda:0"),
        ("auto", APPLE, "mps"),
        ("auto", DRIVERLESS, "cpu"),
        ("cpu", TWO_GPUS, "cpu"),
        ("cuda", TWO_GPUS, "cuda:0"),
        ("cuda:1", TWO_GPUS, "cuda:1"),
        (" CUDA:1 ", TWO_GPUS, "cuda:1"),
        ("mps", APPLE, "mps"),
    ],
)
def test_the_device_is_the_one_asked_for_or_the_best_there_is(
    asked: str, found: Accelerators, device: str
) -> None:
    assert plan_device(asked, "auto", found).device == device


@pytest.mark.parametrize(
    ("asked", "found", "words"),
    [
        ("cuda", CPU_ONLY, ["CPU-only build", "Install a CUDA build of torch", "device=cpu"]),
        ("cuda:0", DRIVERLESS, ["sees no CUDA GPU", "nvidia-smi", "device=auto"]),
        ("cuda:2", TWO_GPUS, ["2 CUDA GPU(s)", "cuda:0 to cuda:1"]),
        ("mps", CPU_ONLY, ["no usable MPS", "device=cpu"]),
        ("gpu", TWO_GPUS, ["'gpu' is not a device", "cuda:N"]),
    ],
)
def test_a_device_that_is_not_there_is_a_config_error_naming_the_fix(
    asked: str, found: Accelerators, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_device(asked, "auto", found)
    for word in words:
        assert word in str(caught.value)
    assert asked.strip() in str(caught.value)


def test_asking_this_machine_for_cuda_fails_clearly_when_its_torch_has_none() -> None:
    real = Accelerators.probe()
    if real.cuda_devices:  # a GPU machine: the plan is that GPU, in half precision
        assert plan_device("cuda", "auto").precision == "float16"
        return
    with pytest.raises(ConfigError, match=r"setting device='cuda'.*(CPU-only build|no CUDA GPU)"):
        plan_device("cuda", "auto")


@pytest.mark.parametrize(
    ("found", "asked", "precision"),
    [
        (CPU_ONLY, "auto", "float32"),
        (TWO_GPUS, "auto", "float16"),
        (APPLE, "auto", "float16"),
        (TWO_GPUS, "float32", "float32"),
        (TWO_GPUS, "bfloat16", "bfloat16"),
        (CPU_ONLY, "bfloat16", "bfloat16"),
    ],
)
def test_half_precision_on_a_gpu_unless_told(
    found: Accelerators, asked: str, precision: str
) -> None:
    assert plan_device("auto", asked, found).precision == precision  # type: ignore[arg-type]


def test_an_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="precision='int8' is not one of auto, float32"):
        plan_device("cpu", "int8", CPU_ONLY)  # type: ignore[arg-type]


def test_batches_follow_the_device_unless_overridden() -> None:
    cpu, gpu = plan_device("auto", "auto", CPU_ONLY), plan_device("auto", "auto", TWO_GPUS)
    assert (cpu.token_budget, cpu.gather_seconds) == (CPU_TOKEN_BUDGET, 0.0)
    assert gpu.token_budget == GPU_TOKEN_BUDGET > cpu.token_budget
    assert gpu.gather_seconds > 0 and gpu.tokenizer_threads >= 1
    tuned = plan_device("cuda", "auto", TWO_GPUS, token_budget=8192, gather_seconds=0.0)
    assert (tuned.token_budget, tuned.gather_seconds) == (8192, 0.0)


def test_settings_carry_the_device_and_reject_a_malformed_one() -> None:
    settings = load_settings(
        env={"WEAVE_STREAM_DEVICE": "cuda:1", "WEAVE_STREAM_EMBED_TOKEN_BUDGET": "4096"}
    )
    plan = plan_for(settings, TWO_GPUS)
    assert (plan.device, plan.precision, plan.token_budget) == ("cuda:1", "float16", 4096)
    assert plan.gather_seconds == settings.batch_max_wait_seconds  # a GPU waits as a micro-batch
    with pytest.raises(ConfigError, match=r"device .*'gpu0'.*is not a device"):
        load_settings(env={"WEAVE_STREAM_DEVICE": "gpu0"})
    with pytest.raises(ConfigError, match=r"embed_service .*unix:/path"):
        load_settings(env={"WEAVE_STREAM_EMBED_SERVICE": "tcp://localhost:1"})
