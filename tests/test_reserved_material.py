"""Packages reserved for an independent test must never be used: not in the code, not in the material lists.

This file is the only one allowed to name them."""
import re
import subprocess
from pathlib import Path

from avsoundscape.material import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
RESERVED = ("csound-doc", "alsa-utils", "asterisk-core-sounds-fr-", "megaglest-data", "lincity-ng-data",
            "plasma-workspace-wallpapers", "lomiri-wallpapers", "opencv-doc")


def _is_reserved(package: str) -> bool:
    return any(package.lower().startswith(r) for r in RESERVED)


def test_no_tracked_file_names_a_reserved_package():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for f in files:
        path = ROOT / f
        if f == "tests/test_reserved_material.py" or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore").lower()
        hits += [(f, r) for r in RESERVED if r in text]
    assert hits == []


def test_the_material_lists_hold_no_reserved_package():
    makefile = (ROOT / "Makefile").read_text()
    debs = re.search(r"MATERIAL_DEBS := (.*?)\nMATERIAL :=", makefile, re.S).group(1).replace("\\\n", " ").split()
    packages = {d.split("=")[0] for d in debs} | {s.package.removeprefix("pypi:") for s in CATALOGUE}
    assert packages and not [p for p in packages if _is_reserved(p)]
    # the check itself: wildcard families are caught, their unreserved neighbours are not
    assert _is_reserved("asterisk-core-sounds-fr-wav") and _is_reserved("lomiri-wallpapers-extra") and _is_reserved("csound-doc")
    assert not _is_reserved("asterisk-core-sounds-en-g722") and not _is_reserved("alsa-ucm-conf")


def test_makefile_pins_every_debian_package_of_the_catalogue():
    makefile = (ROOT / "Makefile").read_text()
    debs = re.search(r"MATERIAL_DEBS := (.*?)\nMATERIAL :=", makefile, re.S).group(1).replace("\\\n", " ").split()
    pinned = {d.split("=")[0]: d.split("=", 1)[1] for d in debs}
    used = {s.package for s in CATALOGUE if not s.package.startswith("pypi:")}
    assert used == set(pinned) and all(pinned.values())
