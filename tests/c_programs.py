"""Build and run a C test program of tests/engine/c against fastconv's C sources (headers from
fastconv/csrc), for the checks that need C itself: an emulated instruction set, a loop over
every float."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import fastconv

C_SOURCES = Path(__file__).parent / "engine" / "c"


def build_and_run(name, tmp_path, flags):
    """Compile tests/engine/c/<name>.c with ``flags`` and run it; skips the test where there is
    no C compiler, fails it where the build fails. Returns the finished process."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    csrc = Path(fastconv.__file__).parent / "csrc"
    program = tmp_path / name
    build = subprocess.run([compiler, *flags, f"-I{csrc}", str(C_SOURCES / f"{name}.c"), "-lm",
                            "-o", str(program)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return subprocess.run([str(program)], capture_output=True, text=True)
