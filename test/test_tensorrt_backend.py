"""The TensorRT backend's edges, without a GPU: import failures, build failures, version calls.

Import failures are produced by fake ``torch_tensorrt`` packages written to a temporary
directory put first on ``sys.path``: each raises what a broken install raises. Build failures
come from a fake ``torch_tensorrt`` whose ``dynamo.compile`` / ``save`` raise; the cache
code under test is the real one.
"""
from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mfaranet_ros.cli import main
from mfaranet_ros.inference import Segmenter
from mfaranet_ros.inference.backends import (
    BackendUnavailable,
    ModelSource,
    create_backend,
    tensorrt_compat,
)
from mfaranet_ros.inference.backends.tensorrt_backend import (
    EngineBuild,
    EngineBuildError,
    build_and_store,
)
from mfaranet_ros.inference.backends.tensorrt_compat import (
    compile_settings,
    dry_run_settings,
    save_settings,
    torch_tensorrt_installed,
)
from mfaranet_ros.inference.cache import lookup, resolve_cache_dir

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine")


# ----------------------------------------------------------------------------- versions

F16, F32 = torch.float16, torch.float32


@pytest.mark.parametrize("version, precision, expected", [
    # 2.8 (JetPack 6.2): weakly typed; fp16 kernels only where enabled; C++ runtime for save.
    ("2.8.0", "fp16", {"enabled_precisions": {F16, F32}, "use_python_runtime": False}),
    ("2.8.0a0+jetson", "fp32", {"enabled_precisions": {F32}, "use_python_runtime": False}),
    # 2.10-2.12: strongly typed by default; enabled_precisions={fp16, ...} would be refused.
    ("2.11.0", "fp16", {"use_python_runtime": False}),
    # 2.13: enabled_precisions gone, use_python_runtime deprecated.
    ("2.13.0", "fp16", {}),
    ("2.13.0+cu130", "fp32", {}),
])
def test_compile_settings_per_version(version, precision, expected):
    assert compile_settings(version, precision, "cuda:0") == {
        "device": "cuda:0", "min_block_size": 1, **expected}
    dry = dry_run_settings(version, precision, "cuda:0")
    assert dry == {**compile_settings(version, precision, "cuda:0"), "dryrun": True,
                   "use_fast_partitioner": False, "offload_module_to_cpu": True}


def test_save_settings_per_version():
    example = torch.zeros(1, 64, 128, 3)
    assert save_settings("2.8.0", example) == {"output_format": "exported_program",
                                               "retrace": False}
    new = save_settings("2.13.0", example)
    assert new.pop("arg_inputs") == [example]
    assert new == {"output_format": "exported_program", "retrace": True}


def test_settings_are_parameters_of_the_installed_torch_tensorrt():
    """A keyword the installed release does not name would vanish into ``**kwargs``."""
    try:
        from tensorrt_cpu import import_torch_tensorrt
        trt = import_torch_tensorrt()
    except ModuleNotFoundError:
        pytest.skip("torch-tensorrt is not installed (bash scripts/test.sh installs "
                    "torch-tensorrt-rtx)")
    compile_params = inspect.signature(trt.dynamo.compile).parameters
    for precision in ("fp16", "fp32"):
        for key in dry_run_settings(trt.__version__, precision, "cuda:0"):
            assert key in compile_params, (trt.__version__, key)
    save_params = inspect.signature(trt.save).parameters
    for key in save_settings(trt.__version__, torch.zeros(1)):
        assert key in save_params, (trt.__version__, key)


# ----------------------------------------------------------------------------- import

@pytest.fixture
def fake_torch_tensorrt(tmp_path, monkeypatch):
    """``install(source)``: the next ``import torch_tensorrt`` runs ``source``."""
    root = tmp_path / "site"
    real = sys.modules.pop("torch_tensorrt", None)  # e.g. imported by another test

    def install(source: str) -> Path:
        package = root / "torch_tensorrt"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(source)
        monkeypatch.syspath_prepend(str(root))
        sys.modules.pop("torch_tensorrt", None)
        monkeypatch.setattr(tensorrt_compat, "_import_failed", None)
        return package
    yield install
    sys.modules.pop("torch_tensorrt", None)
    if real is not None:
        sys.modules["torch_tensorrt"] = real


@pytest.mark.parametrize("source, cause, fix", [
    ("raise OSError('libnvinfer.so.10: cannot open shared object file: No such file')",
     "OSError: libnvinfer.so.10", "install the TensorRT release"),
    # torch-tensorrt 2.13's own wrapping of a missing TensorRT
    ("raise Exception('import error when try to import _TensorRTProxyModule, got error "
     "Could not find libnvinfer.so.11')", "Exception: import error", "LD_LIBRARY_PATH"),
    ("raise ImportError('_C.so: undefined symbol: _ZN3c1017RegisterOperators')",
     "ImportError: _C.so: undefined symbol", "reinstall the torch-tensorrt release made for"),
    ("raise ModuleNotFoundError(\"No module named 'tensorrt'\", name='tensorrt')",
     "ModuleNotFoundError: No module named 'tensorrt'", "does not match torch"),
    ("raise RuntimeError('CUDA driver version is insufficient')",
     "RuntimeError: CUDA driver version is insufficient", "reinstall torch-tensorrt"),
    ("__version__ = '2.7.0'", "2.7.0 is too old", ">= 2.8 is required"),
])
def test_every_import_failure_is_backend_unavailable(fake_torch_tensorrt, monkeypatch, source,
                                                    cause, fix):
    monkeypatch.setattr(torch.version, "cuda", "12.6")  # as on a GPU machine: a CUDA build
    fake_torch_tensorrt(source)
    with pytest.raises(BackendUnavailable) as err:
        tensorrt_compat.import_torch_tensorrt()
    assert cause in str(err.value) and fix in str(err.value)


def test_import_on_a_cpu_torch_names_the_cpu_build(fake_torch_tensorrt, monkeypatch):
    # what torch-tensorrt raises at import on a CPU-only torch (torch.cuda.get_device_capability)
    monkeypatch.setattr(torch.version, "cuda", None)
    fake_torch_tensorrt("raise AssertionError('Torch not compiled with CUDA enabled')")
    with pytest.raises(BackendUnavailable, match="a build without CUDA .*AssertionError: Torch "
                       "not compiled with CUDA enabled.*install a CUDA build of torch"):
        tensorrt_compat.import_torch_tensorrt()


def test_not_installed_and_a_working_import(fake_torch_tensorrt):
    package = fake_torch_tensorrt("__version__ = '2.8.0'\n")
    assert torch_tensorrt_installed()
    assert tensorrt_compat.import_torch_tensorrt().__version__ == "2.8.0"
    # None: the import raises ModuleNotFoundError (the fixture restores sys.modules)
    sys.modules["torch_tensorrt"] = None
    with pytest.raises(BackendUnavailable, match="torch_tensorrt is not installed.*install "
                                                 "torch-tensorrt >= 2.8"):
        tensorrt_compat.import_torch_tensorrt()
    assert package.is_dir()


def test_a_failed_import_is_not_retried(fake_torch_tensorrt, tmp_path):
    """A second import of a half-initialised native package fails differently: keep the first."""
    attempts = tmp_path / "attempts"
    fake_torch_tensorrt(f"open({str(attempts)!r}, 'a').write('x')\n"
                        f"raise Exception('Could not find libnvinfer.so.11')\n")
    for _ in range(3):
        with pytest.raises(BackendUnavailable, match="libnvinfer.so.11"):
            tensorrt_compat.import_torch_tensorrt()
    assert attempts.read_text() == "x"


@needs_no_cuda
def test_named_tensorrt_is_a_clear_error_and_auto_falls_back(fake_torch_tensorrt, tiny_checkpoint,
                                                             tmp_path, caplog):
    # Installed but broken: on a machine without CUDA, the reason is the missing GPU, and
    # the (slow, failing) import is not even tried.
    fake_torch_tensorrt("raise AssertionError('Torch not compiled with CUDA enabled')")
    source, cache = ModelSource(tiny_checkpoint), resolve_cache_dir(tmp_path)
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        create_backend("tensorrt", source, cache=cache)
    assert tensorrt_compat._import_failed is None
    with caplog.at_level(logging.WARNING, logger="mfaranet_ros"):
        backend = create_backend("auto", source, cache=cache)
    assert backend.name == "onnxruntime"
    assert "tensorrt on cuda: device 'cuda' requested but torch sees no CUDA device" in caplog.text


@needs_no_cuda
def test_tensorrt_missing_or_no_gpu_is_a_clear_error(tiny_checkpoint, inference_cache_dir):
    installed = torch_tensorrt_installed()
    with pytest.raises(BackendUnavailable) as err:
        Segmenter.from_checkpoint(tiny_checkpoint, backend="tensorrt",
                                  cache_dir=inference_cache_dir)
    assert ("torch_tensorrt is not installed" in str(err.value)) != installed
    if installed:
        assert "CUDA" in str(err.value)


# ----------------------------------------------------------------------------- build-engine

def test_build_engine_tensorrt_without_a_gpu(tiny_checkpoint, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine")
    argv = ["build-engine", "--weights", str(tiny_checkpoint), "--backend", "tensorrt",
            "--input-size", "64x128", "--cache-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ("no CUDA device" in err) if torch_tensorrt_installed() else \
        ("torch_tensorrt is not installed" in err)
    assert list(tmp_path.iterdir()) == []


@needs_no_cuda
def test_build_engine_dry_run_without_a_gpu_says_how_to_check(tiny_checkpoint, capsys):
    argv = ["build-engine", "--weights", str(tiny_checkpoint), "--backend", "tensorrt",
            "--input-size", "64x128", "--dry-run"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "needs torch-tensorrt and a CUDA device" in line
    assert line.endswith("bash scripts/test.sh test/test_tensorrt_convert.py")
    assert captured.out == ""
    argv[argv.index("tensorrt")] = "onnxruntime"
    assert main(argv) == 2
    assert "use it with --backend tensorrt" in capsys.readouterr().err


# ----------------------------------------------------------------------------- build failures

class FakeTorchTensorRT:
    """``torch_tensorrt`` whose compile/save do what a test says; it records the calls."""

    Input = staticmethod(lambda **spec: SimpleNamespace(**spec))

    def __init__(self, version="2.13.0", compile_error=None, save_error=None):
        self.__version__ = version
        self.compile_error, self.save_error = compile_error, save_error
        self.calls = []
        self.dynamo = SimpleNamespace(compile=self._compile)

    def _compile(self, program, **kwargs):
        self.calls.append(("compile", program, kwargs))
        if self.compile_error is not None:
            raise self.compile_error
        return "compiled module"

    def save(self, module, path, **kwargs):
        self.calls.append(("save", module, path, kwargs))
        Path(path).write_bytes(b"half an engine")
        if self.save_error is not None:
            raise self.save_error
        Path(path).write_bytes(b"an engine")


@pytest.fixture
def build(tiny_checkpoint, monkeypatch):
    # The export is not what these tests are about (the convertibility tests export).
    monkeypatch.setattr(EngineBuild, "export", lambda self, graph=None: "exported program")
    return EngineBuild(ModelSource(tiny_checkpoint), 2, 512, 1024, "fp16", True, device="cpu")


KEY = {"what": "a test key"}


@pytest.mark.parametrize("error, fix", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "free GPU memory, or use a smaller input_size or batch"),
    (RuntimeError("[TRT] [E] IBuilder::buildSerializedNetwork: Error Code 4"),
     "--dry-run --precision fp16"),
    (AssertionError("Unsupported converter for aten.foo"), "choose backend 'torch'"),
])
def test_a_failed_build_names_the_engine_and_caches_nothing(build, tmp_path, error, fix):
    trt = FakeTorchTensorRT(compile_error=error)
    with pytest.raises(EngineBuildError) as err:
        build_and_store(trt, build, KEY, tmp_path)
    message = str(err.value)
    assert message.startswith("building the TensorRT engine for random19.pth, input "
                              "2x512x1024x3, fp16, with confidence failed")
    assert f"{type(error).__name__}: {error}" in message and fix in message
    assert "nothing was cached" in message
    assert isinstance(err.value, BackendUnavailable)
    assert list(tmp_path.iterdir()) == []
    (call,) = trt.calls
    assert call[0] == "compile" and call[1] == "exported program"


def test_a_failed_save_leaves_no_half_written_entry(build, tmp_path):
    trt = FakeTorchTensorRT(save_error=OSError(28, "No space left on device"))
    with pytest.raises(EngineBuildError, match="saving the TensorRT engine for .*2x512x1024x3, "
                                               "fp16.*No space left on device"):
        build_and_store(trt, build, KEY, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the partial file nor a manifest
    assert lookup(tmp_path, "mfaranet-trt", KEY, "ep")[0] is None


@pytest.mark.parametrize("version", ["2.8.0", "2.13.0"])
def test_a_build_calls_torch_tensorrt_as_its_version_expects(build, tmp_path, version):
    trt = FakeTorchTensorRT(version)
    module, path = build_and_store(trt, build, KEY, tmp_path)
    assert module == "compiled module"
    assert lookup(tmp_path, "mfaranet-trt", KEY, "ep")[0] == path
    assert path.read_bytes() == b"an engine"
    (_, program, compile_kwargs), (_, saved, save_path, save_kwargs) = trt.calls
    (spec,) = compile_kwargs.pop("arg_inputs")
    assert (spec.shape, spec.dtype) == ((2, 512, 1024, 3), torch.float16)
    assert compile_kwargs == compile_settings(version, "fp16", "cuda:0")
    assert saved == "compiled module" and save_path.endswith(".ep")  # the format goes by suffix
    if version == "2.8.0":
        assert save_kwargs == save_settings(version, build.example())
    else:
        (example,) = save_kwargs.pop("arg_inputs")
        assert (example.shape, example.dtype) == ((2, 512, 1024, 3), torch.float16)
    # Nothing cached without a cache directory, the module is still returned.
    assert build_and_store(FakeTorchTensorRT(version), build, KEY, None) == (
        "compiled module", None)
