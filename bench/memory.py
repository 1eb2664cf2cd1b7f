"""Peak memory of stylizing a long input: `Stylizer.stylize_file` streams windows to the output file. Run in its own
process; the sampler step count does not change what is held, so a few steps keep the run short."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from inputs import scene, speech
from speed import load, peak_rss_mb


def peak(seconds: float, steps: int = 2) -> dict:
    st, x, (audio, frame) = load(None), speech(seconds), scene()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        info = st.stylize_file(x, Path(d) / "out.wav", audio, frame, steps=steps, guidance=1.0, seed=0)
        wall = time.perf_counter() - t0
    return {"audio_seconds": seconds, "steps": steps, "written_seconds": info["seconds"], "wall_s": wall,
            "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    print(json.dumps(peak(float(sys.argv[1]))))
