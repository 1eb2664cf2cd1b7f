"""The readers under fuzzing (tests/fuzz/readers.py, atheris): every input loads or gives an AvsError naming the file.

The committed corpus is replayed on every run (inputs that once failed stay fixed); then each target is
fuzzed for a few seconds from that corpus. `make fuzz` runs longer and grows the corpus."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import readers  # noqa: E402  (the harness: its target functions are the checks)

SECONDS = int(os.environ.get("AVS_FUZZ_SECONDS", "12"))


@pytest.mark.parametrize("target", sorted(readers.TARGETS))
def test_committed_corpus_replays(target):
    files = sorted((FUZZ / "corpus" / target).iterdir())
    assert files, f"empty corpus for {target}"
    for f in files:
        readers.TARGETS[target](f.read_bytes())


def test_harness_catches_an_unnamed_error(tmp_path):
    "The check itself can fail: an error that does not name the file, or another exception, is a finding."
    from avsoundscape.core import AvsError

    def unnamed():
        raise AvsError("something went wrong")

    with pytest.raises(AssertionError, match="does not name the file"):
        readers.expect_named_error(unnamed, tmp_path / "x.wav")
    with pytest.raises(ZeroDivisionError):
        readers.expect_named_error(lambda: 1 / 0, tmp_path / "x.wav")

    def named():
        raise AvsError(f"{tmp_path / 'x.wav'}: bad")

    readers.expect_named_error(named, tmp_path / "x.wav")  # the allowed outcome passes


@pytest.mark.parametrize("target", sorted(readers.TARGETS))
def test_fuzz_briefly(target, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus" / target, corpus)
    seeds = len(list(corpus.iterdir()))
    r = subprocess.run([sys.executable, str(FUZZ / "readers.py"), target, str(corpus), f"-max_total_time={SECONDS}", "-seed=1",  # a fixed mutation order: a finding here reproduces
                        "-timeout=20", "-rss_limit_mb=4096", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
                       capture_output=True, text=True, timeout=SECONDS + 120,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)})
    found = sorted(p.name for p in tmp_path.glob("*-*") if p.is_file())
    assert r.returncode == 0, f"fuzzing {target} found {found}:\n{r.stderr[-4000:]}"
    runs = re.search(r"stat::number_of_executed_units: (\d+)", r.stderr)
    assert runs and int(runs.group(1)) > seeds, r.stderr[-2000:]  # it ran new inputs, not only the seeds
