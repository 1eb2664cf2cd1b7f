"""The exported library installs on its own: a wheel holds every module, its data files and the console script."""
import configparser
import zipfile

from conftest import ROOT


def test_wheel_builds_with_modules_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    modules = {p.name for p in (ROOT / "avsoundscape").glob("*.py")} | {"material.tsv"}  # the material catalogue
    assert modules <= {n.split("/")[-1] for n in names if n.startswith("avsoundscape/")}
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "avsoundscape = avsoundscape.cli:main" in meta


def test_library_requirements_are_pinned_in_the_lock():
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    lock = {l.split("==")[0] for l in (ROOT / "requirements.lock").read_text().splitlines()
            if l and not l.startswith("#")}
    reqs = cfg["DEFAULT"]["requirements"].split() + cfg["DEFAULT"]["dev_requirements"].split()
    import re
    names = {re.split(r"[<>=!~ ]", r)[0].lower() for r in reqs}
    assert names <= lock, names - lock
    assert all("==" in l for l in (ROOT / "requirements.lock").read_text().splitlines() if l and not l.startswith("#"))
