"""tools/validate_gpu.py: on the CPU always (quick), on a GPU when Keras sees one."""
import importlib.util
import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("keras")
from fastconv.cli import validation  # noqa: E402

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tools" / "validate_gpu.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("validate_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def has_gpu():
    return validation.gpu_available()


def test_cpu_table(script, capsys):
    assert script.main(["--device", "cpu", "--quick"]) == 0
    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if line.startswith("| ") and "cpu:0" in line]
    assert len(rows) == len(validation.CONFIGS)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[3]) < 1e-5 and float(cells[4]) < 1e-5 and cells[5] == "ok"
    assert "float32 forced" in err


def test_forcing_float32_toggles_the_backend_flag():
    backend = validation.keras_backend()
    if backend != "tensorflow":
        pytest.skip("flag check written for the TensorFlow backend")
    import tensorflow as tf

    validation.set_full_float32(backend, True)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    validation.set_full_float32(backend, False)
    assert tf.config.experimental.tensor_float_32_execution_enabled()


def test_gpu_requested_without_gpu(script, has_gpu):
    if has_gpu:
        pytest.skip("a GPU is visible")
    assert script.main(["--device", "gpu", "--quick"]) == 2


def test_gpu_table(script, has_gpu, capsys):
    if not has_gpu:
        pytest.skip("no GPU visible to Keras")
    assert script.main(["--device", "gpu", "--quick"]) == 0
    out, _ = capsys.readouterr()
    assert "gpu:0" in out


def test_torch_backend_on_cpu():
    """The same script under Keras's PyTorch backend (a fresh process: the backend is global)."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "| torch " in line]
    assert len(rows) == len(validation.CONFIGS) and all(row.rstrip(" |").endswith("ok") for row in rows)
