"""python -m fastconv demo | check | bench, in-process with small sizes (TensorFlow on CPU)."""
import os
import subprocess
import sys

import pytest

from fastconv import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def test_version_and_usage_without_importing_frameworks():
    result = subprocess.run([sys.executable, "-m", "fastconv", "--version"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0 and result.stdout.startswith("fastconv ")
    with pytest.raises(SystemExit):
        cli.main([])


@pytest.mark.skipif(not cli.installed("tensorflow"), reason="TensorFlow not installed")
def test_demo_with_tensorflow(capsys):
    assert cli.main(["demo", "--size", "96", "--repeats", "1"]) == 0
    out, err = capsys.readouterr()
    lines = {line.split("kernel via ")[1].split(":")[0]: line for line in out.splitlines() if "kernel via" in line}
    assert "WRONG" in lines["reshape"] and "agrees" in lines["caffe_to_keras_kernel"]
    conv_disagreement = float(lines["reshape"].split("conv ")[1].split()[0])
    assert 1.0 < conv_disagreement < 2.0                 # ~140 % of the output: scrambled
    assert float(lines["caffe_to_keras_kernel"].split("conv ")[1].split()[0]) < 1e-5
    assert "(1, 96, 22, 22)" in out and "TensorFlow tf.nn.conv2d" in out and " ms" in out
    assert "[fastconv] importing TensorFlow" in err       # progress goes to stderr


@pytest.mark.skipif(not cli.installed("tensorflow"), reason="TensorFlow not installed")
def test_demo_output_has_no_tensorflow_log_lines():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    result = subprocess.run([sys.executable, "-m", "fastconv", "demo", "--size", "48", "--repeats", "1"],
                            capture_output=True, text=True,
                            env=dict(environment, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr
    assert "AlexNet-style conv1: 1x3x48x48 input" in result.stdout
    for line in (result.stdout + result.stderr).splitlines():
        assert line.startswith("[fastconv]") or line in result.stdout, line
        assert not any(word in line for word in ("absl", "oneDNN", "cuda", "cuInit")), line


@pytest.mark.parametrize("available", [{"torch"}, set()], ids=["torch-only", "no-peer"])
def test_demo_without_tensorflow(monkeypatch, capsys, available):
    monkeypatch.setattr(cli, "installed", lambda module: module in available and cli.importlib.util.find_spec(module) is not None)
    assert cli.main(["demo", "--size", "64", "--repeats", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "TensorFlow/Keras is not installed" in out
    assert "Keras semantics (fastconv), kernel via reshape" in out and "WRONG" in out
    if available and cli.importlib.util.find_spec("torch"):
        assert "PyTorch conv2d" in out
    elif not available:
        assert "no peer to time against" in out


@pytest.mark.skipif(not cli.installed("keras"), reason="Keras not installed")
def test_check_prints_the_table(capsys):
    assert cli.main(["check", "--quick"]) == 0
    out, _ = capsys.readouterr()
    assert "| layer" in out and "cpu:0" in out and "resnet stem 7x7/2 pad 3" in out
    assert "FAIL" not in out


def test_bench_table(monkeypatch, capsys):
    from fastconv.cli.bench_layers import Layer

    small = {"tiny 3x3": Layer("tiny 3x3", 1, 4, 12, 12, 4, 3, pad=1),
             "tiny grouped": Layer("tiny grouped", 1, 4, 9, 9, 4, 3, stride=2, group=2)}
    monkeypatch.setattr(cli, "BY_NAME", small)
    monkeypatch.setattr(cli, "CLI_LAYERS", tuple(small))
    assert cli.main(["bench", "--repeats", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "fastconv GFLOP/s" in out and "tiny grouped" in out
