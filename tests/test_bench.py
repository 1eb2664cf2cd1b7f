"""The benchmark harness (bench/): the reference loop computes exactly what the Stylizer computes, the sampler choice
follows its stated rule, and the README's performance section is rewritten in place."""
import json
import sys

import pytest
import torch

from conftest import ROOT, speechlike

sys.path.insert(0, str(ROOT / "bench"))

from reference import reference_stylize  # noqa: E402
from run import END, START, choose, put_section, tables  # noqa: E402
from speed import MelProbe  # noqa: E402


@pytest.mark.parametrize("batch_size, prior", [(16, False), (2, False), (2, True)])
def test_reference_loop_equals_the_stylizer(batch_size, prior):
    from avsoundscape.stylize import TINY_MODEL, Stylizer, build_components, tiny_stylizer

    if prior:  # the shipped model's kind: a room reader and the acoustic prior (the network generates the residual)
        torch.manual_seed(0)
        model = {**TINY_MODEL, "audio_encoder": {**TINY_MODEL["audio_encoder"], "room": True},
                 "denoiser": {**TINY_MODEL["denoiser"], "prior": {"room": True}}}
        st = Stylizer(*build_components(model), config={"steps": 3, "guidance": 2.0}, device="cpu")
    else:
        st = tiny_stylizer()
    st.vocoder, st.config["batch_size"] = MelProbe(), batch_size  # Griffin-Lim's random phases aside
    x = speechlike(4.0).float()
    scene = 0.05 * torch.randn(2 * 16000, generator=torch.Generator().manual_seed(1))
    frame = torch.randint(0, 255, (48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    # the stream: what `stylize` returns before its one full-scale gain (the probe's "audio" is mel values, far beyond 1)
    ours = torch.cat(list(st.stream(x, scene, frame, steps=3, guidance=2.0, seed=0)))
    ref = reference_stylize(st, x, scene, frame, steps=3, guidance=2.0, seed=0)
    assert ours.shape == ref.shape == x.shape
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    other = reference_stylize(st, x, scene, frame, steps=3, guidance=2.0, seed=1)
    assert (other - ours).abs().max() > 1e-2  # the check can fail: another seed is another output


def point(sampler, steps, rt, amb, l1, ci=0.1):
    m = lambda v: {"mean": v, "ci95": ci}
    return {"sampler": sampler, "steps": steps, "seconds": steps * 1.0, "rt60_error_s": m(rt),
            "ambient_distance_db": m(amb), "logmel_l1_db": m(l1)}


def test_choice_is_the_fewest_steps_within_the_best_ci():
    pts = [point("ddim", 5, 0.9, 9.0, 9.0), point("dpmsolver++", 5, 0.65, 7.0, 8.0),
           point("ddim", 10, 0.52, 7.05, 8.0), point("dpmsolver++", 10, 0.5, 7.0, 8.0), point("dpmsolver++", 25, 0.5, 6.95, 7.95)]
    assert choose(pts)["steps"] == 10 and choose(pts)["sampler"] == "dpmsolver++"
    assert choose(pts[-1:])["steps"] == 25


def test_tables_and_readme_section(tmp_path):
    sp = {"steps": 25, "sampler": "dpmsolver++", "guidance": 2.0, "render": "latent", "equal_outputs": {"max_abs_diff": 3e-7},
          "inputs": [{"audio_seconds": 10.24, "speedup": 1.6,
                      **{m: {"rtf": {"median": r, "min": r, "max": r, "runs": 3}, "peak_rss_mb": 700.0} for m, r in
                         (("ours", 0.5), ("reference", 0.8))}}]}
    q = {"cases": 12, "guidance": 2.0, "render": "latent", "points": [point("dpmsolver++", 10, 0.5, 7.0, 8.0)]}
    q["choice"] = choose(q["points"])
    th = {"training_examples_per_s": {"ldm": [40.0, 42.0, 41.0]}, "data_video_s_per_cpu_s": {"prepare_gated": [9.0, 10.0]}}
    mem = {"long": [{"audio_seconds": 600.0, "steps": 2, "peak_rss_mb": v} for v in (900.0, 910.0, 905.0)],
           "short": [{"audio_seconds": 10.24, "steps": 2, "peak_rss_mb": v} for v in (800.0, 790.0, 795.0)]}
    md = tables({"date": "2026-11-30", "commit": "0123456789abcdef", "machine": "2 CPU cores"}, sp, q, th, mem)
    assert "| cpu | 10.24 s | 0.50 [0.50-0.50] | 0.80 [0.80-0.80] | 1.60x |" in md and "Chosen: **dpmsolver++, 10 steps**" in md
    assert "10 minutes" in md and "41.0 [40.0-42.0] examples/s" in md and "905 [900-910] MB" in md
    assert "(12 cross-scene test cases, latent render, guidance 2, mean" in md  # the render the sweep measured
    assert "(default model, latent render, 25 dpmsolver++ steps, guidance 2;" in md  # the render the speed runs timed
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{START}\nold\n{END}\ntail\n")
    put_section(readme, md)
    put_section(readme, md)  # idempotent
    text = readme.read_text()
    assert text.count(START) == 1 and "old" not in text and text.endswith(f"{END}\ntail\n") and md in text
    nb = tmp_path / "index.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": f"## P\n{START}\nold\n{END}"}]}))
    put_section(nb, md)
    assert md in json.loads(nb.read_text())["cells"][0]["source"]
    empty = tmp_path / "empty.md"
    empty.write_text("no markers\n")
    with pytest.raises(SystemExit, match="has no <!-- bench:start -->"):
        put_section(empty, md)


def test_readme_and_index_carry_the_bench_section():
    for f in (ROOT / "README.md", ROOT / "nbs" / "index.ipynb"):
        text = f.read_text()
        assert START in text and END in text, f


def test_peak_memory_is_this_process_own():
    import subprocess

    from speed import peak_rss_mb

    here = peak_rss_mb()
    assert here > 50  # torch alone is more than that
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); from speed import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 1 < child < here  # a fresh interpreter without torch: its high-water mark is not ours
