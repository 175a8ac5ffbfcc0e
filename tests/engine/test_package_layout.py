"""The package's shape: only fastconv._engine imports the C core (so its OpenMP settings are in
force whatever a program imports first; import-linter cannot see the extension module), the
tests' references stay independent of fastconv, and the old public names still work, with one
DeprecationWarning."""
import ast
import pathlib
import shutil
import subprocess
import sys
import warnings

import pytest

import fastconv

PACKAGE = pathlib.Path(fastconv.__file__).parent


def imports_core(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
            if any(name.split(".")[-1] == "_core" for name in names):
                return True
    return False


def test_only_the_engine_imports_the_c_core():
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if imports_core(p))
    assert importers == ["_engine.py"]


def test_the_test_references_do_not_import_fastconv():
    references = pathlib.Path(__file__).resolve().parents[1] / "reference"
    for path in references.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
                assert not any(n.split(".")[0] == "fastconv" for n in names), path.name


def test_check_layer_is_a_deprecated_alias_warning_once():
    import fastconv.keras
    import fastconv.testing

    fastconv.keras.__dict__.pop("check_layer", None)      # as if never looked up
    with pytest.warns(DeprecationWarning, match="check_keras_layer"):
        first = fastconv.keras.check_layer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastconv.keras.check_layer is first is fastconv.testing.check_keras_layer


@pytest.mark.parametrize("name", ["conv2d_caffe_backward", "deconv2d_caffe", "pool2d_caffe",
                                  "convnd_caffe"])
def test_layers_module_names_are_deprecated_aliases(name):
    import fastconv.layers

    fastconv.layers.__dict__.pop(name, None)
    with pytest.warns(DeprecationWarning, match=f"fastconv.caffe.{name}"):
        assert getattr(fastconv.layers, name) is getattr(fastconv, name)
    with pytest.raises(AttributeError):
        fastconv.layers.conv2d_keras       # never lived there


def test_unbuilt_source_tree_says_what_to_do(tmp_path):
    """Python started inside a checkout whose C core is not built imports that checkout's
    fastconv/ (the current directory comes first on sys.path), not the installed one."""
    shutil.copytree(PACKAGE, tmp_path / "fastconv",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "build"))
    # The current directory comes first on sys.path, as for a user in the checkout; an editable
    # install's finder (a development setup) would still win, so it is set aside.
    load_checkout = ("import sys; sys.meta_path[:] = [finder for finder in sys.meta_path "
                     "if 'editable' not in getattr(finder, '__module__', '')]; import fastconv")
    result = subprocess.run([sys.executable, "-c", load_checkout], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError: fastconv's C core (_core, compiled) is not built in" in result.stderr
    assert "python setup.py build_ext --inplace" in result.stderr
    assert "run Python from another directory" in result.stderr
    assert "circular import" not in result.stderr
