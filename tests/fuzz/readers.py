"""Coverage-guided fuzzing (atheris) of the readers a user's files reach.

    python tests/fuzz/readers.py TARGET [CORPUS_DIR ...] [libFuzzer flags, e.g. -max_total_time=60]

TARGET is one of `audio` (load_audio), `video` (load_scene on a video), `image` (load_scene on an image)
or `checkpoint` (Stylizer.from_pretrained on the shipped weights with one file replaced by the input).
Every input must either load or raise `AvsError` whose message names the file; any other exception,
a crash or a hang (libFuzzer's -timeout) is a finding: libFuzzer writes it as crash-*/timeout-* and
exits non-zero. New inputs that reach new code are added to the first corpus folder (committed).
"""
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["avsoundscape"]):
    from avsoundscape.audio import load_audio
    from avsoundscape.core import AvsError
    from avsoundscape.stylize import Stylizer, default_checkpoint, load_scene

logging.disable(logging.CRITICAL)  # conversions are logged at INFO; a fuzz run would drown in them
WORK = Path(tempfile.mkdtemp(prefix="avs-fuzz-"))
# The checkpoint target replaces one file of a copy of the shipped weights: the first input byte picks which.
CKPT = WORK / "ckpt"
CKPT_FILES = ["avsoundscape.json", "audio_encoder/conditioner.json", "audio_encoder/conditioner.safetensors",
              "image_encoder/conditioner.json", "image_encoder/conditioner.safetensors", "denoiser/denoiser.json",
              "denoiser/denoiser.safetensors", "codec/codec.json", "vocoder/vocoder.json"]


def expect_named_error(fn, path: Path) -> None:
    "Run `fn()`: it may return or raise `AvsError` naming `path`; anything else propagates (a finding)."
    try:
        fn()
    except AvsError as e:
        if str(path) not in str(e):
            raise AssertionError(f"AvsError does not name the file {path}: {e}") from e


def one_file(data: bytes, name: str) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def audio(data: bytes) -> None:
    path = one_file(data, "input.wav")
    expect_named_error(lambda: load_audio(path), path)


def video(data: bytes) -> None:
    path = one_file(data, "scene.mp4")
    expect_named_error(lambda: load_scene(scene=path), path)


def image(data: bytes) -> None:
    path = one_file(data, "scene.png")
    expect_named_error(lambda: load_scene(scene_image=path), path)


def checkpoint(data: bytes) -> None:
    if not CKPT.is_dir():
        shutil.copytree(default_checkpoint(), CKPT)
    if not data:
        return
    target = CKPT / CKPT_FILES[data[0] % len(CKPT_FILES)]
    original = target.read_bytes()
    target.write_bytes(data[1:])
    try:
        # the error may name the folder or the replaced file: both lie under CKPT
        expect_named_error(lambda: Stylizer.from_pretrained(CKPT, device="cpu"), CKPT)
    finally:
        target.write_bytes(original)


TARGETS = {"audio": audio, "video": video, "image": image, "checkpoint": checkpoint}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(TARGETS)}}} [corpus dirs] [libFuzzer flags]")
    fn = TARGETS[argv[1]]
    atheris.Setup([argv[0]] + argv[2:], lambda data: fn(bytes(data)))
    atheris.Fuzz()  # exits the process (libFuzzer): WORK lies under TMPDIR, which the test points at its own folder


if __name__ == "__main__":
    main(sys.argv)
