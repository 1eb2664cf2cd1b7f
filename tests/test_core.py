"""Core contracts: no CUDA at import, one device resolver, reproducible seeds, params, atomic writes."""
import subprocess
import sys

import pytest
import torch

from avsoundscape.core import AvsError, atomic_path, load_params, resolve_device, seed_everything


def test_importing_the_package_never_touches_cuda():
    code = ("import importlib, pkgutil, torch, avsoundscape\n"
            "for m in pkgutil.iter_modules(avsoundscape.__path__):\n"
            "    importlib.import_module(f'avsoundscape.{m.name}')\n"
            "assert not torch.cuda.is_initialized(), 'CUDA initialised at import'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(AvsError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(AvsError, match="unknown device"):
        resolve_device("gpu0")


def test_seed_everything_reproduces_all_generators():
    import random
    import numpy as np

    def draw(seed):
        g = seed_everything(seed)
        return random.random(), np.random.rand(), torch.rand(1).item(), g.random()

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_load_params_errors_name_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(AvsError, match=r"params\.yaml: not valid YAML"):
        load_params(bad)


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    dest = tmp_path / "ckpt.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"new but unfinished")
            raise ValueError("interrupted")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]
