"""``fastconv run`` and ``fastconv compare`` (fastconv.cli.net) on a real small net written here:
the table lists every layer with its top shape, --save holds what the net's blobs hold, and
compare finds a planted mistake (exit status 1) and passes a right port (0)."""
import argparse

import numpy as np
import pytest

import fastconv

pytest.importorskip("google.protobuf", reason="fastconv.net needs protobuf (fastconv[caffe])")
from fastconv.cli import net as net_cli  # noqa: E402
from fastconv.net import Net  # noqa: E402
from test_port_check import ALEXNET_SHAPED, random_weights_net  # noqa: E402


def parse(*argv):
    parser = argparse.ArgumentParser(prog="fastconv")
    net_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    prototxt, weights = random_weights_net(directory, ALEXNET_SHAPED)
    x = np.random.default_rng(3).standard_normal((2, 3, 39, 39)).astype(np.float32)
    np.save(directory / "x.npy", x)
    return directory, prototxt, weights, x


def test_run_prints_every_layer_and_saves_every_blob(files, capsys):
    directory, prototxt, weights, x = files
    saved = directory / "blobs.npz"
    assert net_cli.run(parse("run", prototxt, weights, "--input", directory / "x.npy",
                             "--save", saved)) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:-2]}
    assert rows["conv1"][1:3] == ["Convolution", "2x8x18x19"]
    assert rows["pool1"][1:3] == ["Pooling", "2x8x9x9"]        # Caffe's ceil: 9, not 8
    assert rows["fc6"][1:3] == ["InnerProduct", "2x20"]
    assert rows["relu2"][1:3] == ["ReLU", "2x12x9x9"]
    net = Net(prototxt, weights)
    net.forward(data=x)
    with np.load(saved) as blobs:
        assert sorted(blobs.files) == sorted(net.blobs)
        for name, blob in net.blobs.items():
            np.testing.assert_array_equal(blobs[name], blob.data)


def test_run_random_float64_with_progress(files, capsys, monkeypatch):
    directory, prototxt, weights, _ = files
    monkeypatch.setattr(net_cli, "PROGRESS_EVERY_S", -1.0)   # a line after every layer
    saved = directory / "blobs64.npz"
    assert net_cli.run(parse("run", prototxt, weights, "--random", "--dtype", "float64",
                             "--save", saved)) == 0
    captured = capsys.readouterr()
    assert "standard normal, seed 0" in captured.out
    assert "[fastconv] layer 15/15: prob" in captured.err
    with np.load(saved) as blobs:
        assert blobs["prob"].dtype == np.float64
        np.testing.assert_allclose(blobs["prob"].sum(axis=1), 1.0, rtol=1e-12)


def test_compare_passes_a_right_port_and_finds_a_planted_mistake(files, capsys):
    directory, prototxt, weights, x = files
    net = Net(prototxt, weights)
    net.forward(data=x)
    port = {name: np.array(blob.data) for name, blob in net.blobs.items()}
    np.savez(directory / "right.npz", **port)
    assert net_cli.compare(parse("compare", prototxt, weights, directory / "right.npz")) == 0
    assert capsys.readouterr().out.startswith("PASS")

    w, b = (np.array(blob.data) for blob in net.params["conv2"])
    wrong = fastconv.keras_to_caffe_kernel(w.reshape(3, 3, 4, 12))
    port["conv2"] = fastconv.conv2d_caffe(port["pool1"], wrong, b, pad=1, group=2)
    nhwc = {name: (fastconv.nchw_to_nhwc(v) if v.ndim == 4 else v) for name, v in port.items()}
    np.savez(directory / "wrong.npz", **nhwc)
    status = net_cli.compare(parse("compare", prototxt, weights, directory / "wrong.npz",
                                   "--layout", "keras"))
    out = capsys.readouterr().out
    assert status == 1
    assert "first difference: blob 'conv2', written by layer 'conv2' (Convolution)" in out
    assert "kernel reshaped instead of transposed" in out


def test_compare_needs_the_inputs(files):
    directory, prototxt, weights, x = files
    np.savez(directory / "no_input.npz", conv1=np.zeros((2, 8, 18, 19), np.float32))
    with pytest.raises(SystemExit, match="does not hold the net's input"):
        net_cli.compare(parse("compare", prototxt, weights, directory / "no_input.npz"))
    assert net_cli.compare(parse("compare", prototxt, weights, directory / "no_input.npz",
                                 "--input", f"data={directory / 'x.npy'}")) == 1


def test_a_file_the_reader_refuses_ends_with_its_message(files, tmp_path):
    directory, prototxt, weights, _ = files
    broken = tmp_path / "broken.prototxt"
    broken.write_text('layer { name: "data" type: "Input" top: "data" ')
    with pytest.raises(SystemExit, match="fastconv run: .*broken.prototxt"):
        net_cli.run(parse("run", broken, weights, "--random"))


def test_compare_names_blobs_the_net_lacks(files):
    directory, prototxt, weights, x = files
    np.savez(directory / "typo.npz", data=x, conv_1=np.zeros((2, 8, 18, 19), np.float32))
    with pytest.raises(SystemExit, match="does not have: conv_1"):
        net_cli.compare(parse("compare", prototxt, weights, directory / "typo.npz"))
