"""Issue #11, one test per way results used to be mixed or reused silently: toy and full runs,
eval vs bench frames, two spec datasets on one adapter, a media file replaced in place, two
bench runs on one folder, shared defaults, cross-run leaderboards, video proofreading media."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vilem.bench.runner import CellLock, Runner
from vilem.bench.spec import parse_spec
from vilem.cli import build_parser, main
from vilem.eval.engine import EvalOptions
from vilem.report.tables import build_tables, frame, leaderboard, rows
from vilem.results import collect, load_result

TINY = {"images_train": 4, "images_val": 2, "images_test": 6, "videos_train": 2, "videos_val": 2,
        "videos_test": 3}  # fmt: skip


def _spec(tmp_path: Path, out: str = "out", **changes) -> dict:
    raw = {
        "name": "t",
        "out": str(tmp_path / out),
        "bootstrap": 0,
        "models": {"random": {"spec": "random"}},
        "datasets": {
            "syn": {"dataset": "synthetic", "root": str(tmp_path / "data"),
                    "options": {"config": TINY}},
        },  # fmt: skip
        "tasks": ["retrieval"],
    }
    return raw | changes


def _run(raw: dict, **kwargs) -> None:
    Runner(parse_spec(raw, **kwargs), quiet=True).run()


def test_a_quick_run_and_a_full_run_are_two_labelled_tables(tmp_path, capsys):
    full = _spec(tmp_path)
    quick = _spec(tmp_path, "out-quick")
    quick["datasets"]["syn"]["options"] = {"config": TINY | {"images_test": 4}}
    _run(full)
    _run(quick | {"quick": {}}, quick=True, out=str(tmp_path / "out-quick"))
    runs = [str(tmp_path / "out" / "results"), str(tmp_path / "out-quick" / "results")]
    assert main(["leaderboard", *runs]) == 0
    captured = capsys.readouterr()
    titles = [ln for ln in captured.out.splitlines() if ln.startswith("### ")]
    assert len(titles) == 2, titles
    assert titles == ["### syn/test — retrieval [items 6, texts 30]",
                      "### syn/test — retrieval [quick: toy scale, items 4, texts 20]"]
    assert "not readable" not in captured.err


def test_eval_records_its_frames_and_differs_from_a_bench_protocol(tmp_path):
    root = tmp_path / "data" / "synthetic"
    out = tmp_path / "e.json"
    args = ["eval", "--model", "random", "--dataset", "synthetic-video", "--root", str(root),
            "--data-option", f"config={TINY}", "--bootstrap", "0", "--workers", "0", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = load_result(out)
    assert (result.protocol.frames, result.protocol.sampling) == (EvalOptions().frames, "uniform")
    assert main([*args[:-1], str(tmp_path / "e8.json"), "--frames", "8"]) == 0
    records, _ = collect(tmp_path)
    tables = build_tables(records, "retrieval")
    assert sorted(t.variant for t in tables) == ["frames 12", "frames 8"]
    assert all(t.toy is False for t in tables)


def test_eval_and_bench_share_one_set_of_defaults():
    d = EvalOptions()
    args = build_parser().parse_args(["eval", "--model", "random", "--dataset", "synthetic"])
    assert (args.frames, args.sampling, args.bootstrap, args.seed, args.precision) == (
        d.frames, d.sampling, d.bootstrap, d.seed, d.precision
    )
    assert tuple(args.recall_k) == d.recall_ks
    spec = parse_spec(
        {"models": {"r": {"spec": "random"}}, "datasets": {"s": {"dataset": "synthetic"}}}
    )
    opts = spec.eval_options()
    fields = ("frames", "sampling", "bootstrap", "seed", "recall_ks", "precision")
    assert [getattr(opts, f) for f in fields] == [getattr(d, f) for f in fields]


def test_two_spec_datasets_on_one_adapter_are_both_shown(tmp_path):
    raw = _spec(tmp_path)
    raw["datasets"]["syn-b"] = dict(raw["datasets"]["syn"])
    raw["datasets"]["syn-b"]["options"] = {"config": TINY | {"images_test": 5}}
    _run(raw)
    records, problems = collect(tmp_path / "out" / "results")
    assert problems == [] and len(records) == 2
    assert {t.dataset for t in build_tables(records)} == {"syn", "syn-b"}


def test_a_media_file_replaced_in_place_is_encoded_again(tmp_path):
    from vilem.data import load_split
    from vilem.eval.engine import evaluate
    from vilem.models import load_model

    split = load_split("synthetic", "test", root=tmp_path / "d", config=TINY)
    model = load_model("random")
    opts = EvalOptions(bootstrap=0, num_workers=0, quiet=True, cache_dir=tmp_path / "cache")
    first = evaluate(model, split, "retrieval", opts)
    assert first.extra["cache"] == {"hits": 0, "misses": 2}
    assert evaluate(model, split, "retrieval", opts).extra["cache"] == {"hits": 2, "misses": 0}
    path = split.item_paths[0]
    stat = path.stat()
    Image.new("RGB", Image.open(path).size, (0, 0, 0)).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = evaluate(model, split, "retrieval", opts)
    assert third.extra["cache"] == {"hits": 1, "misses": 1}  # the texts still hit


def test_a_result_records_the_thread_count_its_numbers_were_computed_with(tmp_path):
    """torch's numbers depend on its thread count (vilem.threads) and the CPU's instruction set:
    a result says which, and the report's software section shows them."""
    import torch

    from vilem.data import load_split
    from vilem.eval.engine import evaluate
    from vilem.models import load_model
    from vilem.results import write_result

    split = load_split("synthetic", "test", root=tmp_path / "d", config=TINY)
    opts = EvalOptions(bootstrap=0, num_workers=0, quiet=True)
    before = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            result = evaluate(load_model("random"), split, "retrieval", opts)
            write_result(tmp_path / f"{count}.json", result)
            machine = load_result(tmp_path / f"{count}.json").extra["machine"]
            assert (machine["threads"], machine["follows_load"]) == (count, False)
            assert machine["isa"] == torch.backends.cpu.get_cpu_capability() and machine["cpu"]
    finally:
        torch.set_num_threads(before)


def test_a_cell_whose_model_another_run_is_training_is_in_progress_not_failed(tmp_path):
    raw = _spec(tmp_path)
    raw["models"] = {"itc": {"train": "small-itc", "overrides": ["optim.steps=1"]}}
    raw["mlm"] = None
    lock = CellLock(tmp_path / "out" / "models" / "itc.lock")
    assert lock.acquire()
    try:
        summary = Runner(parse_spec(raw), quiet=True).run()
    finally:
        lock.release()
    assert summary.failed == [] and summary.done == []
    assert summary.busy == [f"itc/syn__retrieval.json (pid {os.getpid()})"]
    assert not (tmp_path / "out" / "results" / "itc").exists()


def test_leaderboard_of_several_runs_numeric_csv_columns_and_a_dataframe(tmp_path, capsys):
    _run(_spec(tmp_path, "a"))
    raw = _spec(tmp_path, "b")
    raw["models"]["random7"] = {"spec": "random:7"}
    _run(raw)
    assert main(["leaderboard", str(tmp_path / "[ab]" / "results"), "--format", "csv",
                 "--baseline", "random",
                 "--columns", "rsum,t2i_R@1"]) == 0  # fmt: skip
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["model"] for r in table) == [
        f"random [{tmp_path / x / 'results'}]" for x in "ab"
    ] + [f"random7 [{tmp_path / 'b' / 'results'}]"
    ]
    assert {k for k in table[0] if k.startswith(("rsum", "t2i"))} == {
        "rsum", "rsum_lo", "rsum_hi", "rsum_best", "t2i_R@1", "t2i_R@1_lo", "t2i_R@1_hi",
        "t2i_R@1_best",
    }  # fmt: skip
    for r in table:
        float(r["rsum"])  # plain numbers
        assert r["rsum_best"] in ("true", "false")
    seven = next(r for r in table if r["name"] == "random7")
    assert seven["delta_rsum_significant"] in ("true", "false", "")
    records, _ = collect(tmp_path / "a" / "results", tmp_path / "b" / "results")
    plain = rows(records, task="retrieval")
    assert {r["source"] for r in plain} == {str(tmp_path / x / "results") for x in "ab"}
    pd = pytest.importorskip("pandas")
    df = frame(records, task="retrieval")
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert np.issubdtype(df["rsum"].dtype, np.floating)
    assert leaderboard(records, "retrieval").count("### ") == 1


def test_a_video_proofreading_example_draws_its_middle_frame(tmp_path):
    import av

    from vilem.report import plots
    from vilem.results import ProofreadExample

    video = tmp_path / "v.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(8):
            img = np.full((32, 32, 3), 30 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    example = ProofreadExample(tokens=["a"], error_prob=[0.5], is_error=[1], media="v.mp4",
                               modality="video")  # fmt: skip
    frame_ = plots._example_image(example, [tmp_path])
    assert frame_ is not None and frame_.shape[2] == 3
    assert 60 <= frame_.mean() <= 150  # the middle of 0..210, not the first (black) frame


def test_re_ranked_and_other_query_protocols_are_their_own_tables(tmp_path):
    root = tmp_path / "data" / "synthetic"
    base = ["eval", "--model", "random", "--dataset", "synthetic-video", "--root", str(root),
            "--data-option", f"config={TINY}", "--bootstrap", "0", "--workers", "0", "--quiet",
            "--frames", "2"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "r" / "plain.json")]) == 0
    assert main([*base, "--out", str(tmp_path / "r" / "dsl.json"), "--rerank", "dsl"]) == 0
    assert main([*base, "--out", str(tmp_path / "r" / "qb.json"), "--rerank", "qb-norm"]) == 0
    assert main([*base, "--out", str(tmp_path / "r" / "one.json"),
                 "--data-option", "protocol=sentence"]) == 0  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "r" / "grouped.json"),
                 "--i2t-ranking", "grouped"]) == 0  # fmt: skip
    assert load_result(tmp_path / "r" / "grouped.json").protocol.settings == {
        "i2t_ranking": "grouped"
    }
    qb = load_result(tmp_path / "r" / "qb.json")
    assert qb.protocol.settings == {"rerank": "qb-norm",
                                    "querybank": "synthetic-video/train captions"}  # fmt: skip
    assert qb.extra["rerank"]["querybank_texts"] > 0
    assert qb.protocol.decoding["backend"] == "decord" and qb.protocol.decoding["frames"] == 2
    records, _ = collect(tmp_path / "r")
    variants = sorted(t.variant for t in build_tables(records, "retrieval"))
    assert variants == [
        "protocol multi, i2t grouped by item, texts 15",
        "protocol multi, plain similarities, texts 15",
        "protocol multi, re-ranked: dsl, texts 15",
        "protocol multi, re-ranked: qb-norm (querybank synthetic-video/train captions), texts 15",
        "protocol sentence, plain similarities, texts 3",
    ]
    # the querybank is never the evaluated split
    assert main([*base, "--rerank", "qb-norm", "--querybank-split", "test"]) == 2
    # ranking options of retrieval are refused for a task that ranks nothing
    for flags in (["--i2t-ranking", "grouped"], ["--rerank", "dsl"]):
        assert main([*base, "--task", "probe", *flags]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse names the choices
        main([*base, "--i2t-ranking", "best"])
    assert exc.value.code == 2


def test_a_masked_lm_another_run_is_training_holds_back_only_the_trained_models(tmp_path):
    raw = _spec(tmp_path)
    raw["models"]["itc"] = {"train": "small-itc", "overrides": ["optim.steps=1"]}
    raw["mlm"] = {"steps": 1}
    lock = CellLock(tmp_path / "out" / "models" / "_mlm.lock")
    assert lock.acquire()
    try:
        summary = Runner(parse_spec(raw), quiet=True).run()
    finally:
        lock.release()
    assert summary.done == ["random/syn__retrieval.json"] and summary.failed == []
    assert summary.busy == [f"itc/syn__retrieval.json (pid {os.getpid()})"]
