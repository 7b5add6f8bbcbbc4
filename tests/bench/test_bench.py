"""The benchmark matrix: spec validation, resumable cells, failures recorded, locks, --quick."""

import json
import os
from pathlib import Path

import pytest
import yaml

from vilem.bench.runner import CellLock, Runner
from vilem.bench.spec import load_spec, parse_spec
from vilem.cli import main
from vilem.errors import ConfigError, VilemError
from vilem.results import load_result

REPO = Path(__file__).resolve().parents[2]
TINY = {"images_train": 4, "images_val": 2, "images_test": 6, "videos_train": 2, "videos_val": 2,
        "videos_test": 3}  # fmt: skip


def spec_dict(tmp_path: Path, **changes) -> dict:
    raw = {
        "name": "t",
        "out": str(tmp_path / "out"),
        "bootstrap": 10,
        "models": {"random": {"spec": "random"}, "random1": {"spec": "random:1"}},
        "datasets": {
            "syn": {
                "dataset": "synthetic",
                "root": str(tmp_path / "data"),
                "options": {"config": TINY},
            },  # fmt: skip
            "vid": {
                "dataset": "synthetic-video",
                "root": str(tmp_path / "data"),
                "options": {"config": TINY},
            },  # fmt: skip
        },
        "tasks": ["retrieval", "probe"],
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modles": {}}, "spec: unknown config key 'modles' (did you mean 'models'?)"),
        ({"tasks": ["retrival"]}, "unknown task 'retrival' (did you mean 'retrieval'?)"),
        ({"models": {"m": {"spec": "randon"}}}, "unknown model 'randon' (did you mean 'random'?)"),
        ({"datasets": {"d": {"dataset": "flikr30k"}}}, "did you mean 'flickr30k'?"),
        ({"datasets": {"d": {"dataset": "coco", "split": "tset"}}}, "did you mean 'test'?"),
        ({"models": {"m": {"spec": "random", "train": "small-itc"}}}, "exactly one of"),
        ({"models": {"m": {"train": "x", "init": "itc"}}}, "init names unknown model 'itc'"),
        ({"exclude": [{"modle": "m"}]}, "did you mean 'model'?"),
        ({"mlm": {"stpes": 600}}, "unknown config key 'mlm.stpes' (did you mean 'steps'?)"),
        ({"mlm": {"seed": 1}}, "unknown config key 'mlm.seed'"),  # the spec's seed trains it
        ({"mlm": {"steps": 0}}, "mlm.steps must be positive, got 0"),
        ({"mlm": {"lr": -1e-3}}, "mlm.lr must be positive, got -0.001"),
        ({"mlm": {"hidden": True}}, "mlm.hidden"),
        ({"mlm": {"lr": "fast"}}, "mlm.lr"),
        ({"mlm": {"dropout": 1.0}}, "mlm.dropout must be in [0, 1), got 1.0"),
        ({"mlm": ["steps"]}, "config key 'mlm' must be a mapping"),
        ({"mlm": {"corpus": []}}, "mlm.corpus lists no dataset"),
        ({"mlm": {"corpus": {"split": "train"}}}, "mlm.corpus needs 'dataset'"),
        ({"mlm": {"corpus": [{"dataset": "synthetc"}]}},
         "mlm.corpus[0]: unknown dataset 'synthetc' (did you mean 'synthetic'?)"),
        ({"mlm": {"corpus": {"dataset": "synthetic", "splt": "train"}}},
         "unknown config key 'mlm.corpus.splt' (did you mean 'split'?)"),
        ({"mlm": {"corpus": {"dataset": "synthetic", "options": [1]}}},
         "config key 'mlm.corpus.options' must be a mapping"),
        ({"datasets": {"d": {"dataset": "synthetic", "i2t_ranking": "group"}}},
         "datasets.d.i2t_ranking 'group' is not one of all-texts, grouped"),
        ({"bootstrap": -1}, "spec: bootstrap must be an integer >= 0, got -1"),
        ({"frames": 0}, "spec: frames must be an integer >= 1, got 0"),
        ({"models": {}}, "spec: the benchmark matrix has no cells: it has no models"),
        ({"models": {}, "datasets": {}},
         "the benchmark matrix has no cells: it has no models and no datasets"),
        ({"tasks": []}, "the benchmark matrix has no cells: it has no tasks"),
        ({"exclude": [{"dataset": "syn"}, {"dataset": "vid"}]},
         "the benchmark matrix has no cells: `exclude` removes every cell"),
    ],
)  # fmt: skip
def test_spec_errors_name_the_problem_before_any_work(tmp_path, change, message):
    with pytest.raises(ConfigError) as exc:
        parse_spec(spec_dict(tmp_path, **change))
    assert message in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_spec_mlm_keys_are_the_train_lm_settings_the_bench_does_not_supply():
    import dataclasses
    import inspect
    import typing

    from vilem.bench.spec import _MLMSettings
    from vilem.train.lm import train_lm

    supplied = {"out_dir", "quiet", "seed", "val_corpus"}  # by Runner.ensure_mlm
    params = inspect.signature(train_lm).parameters
    hints = typing.get_type_hints(_MLMSettings)
    assert {f.name for f in dataclasses.fields(_MLMSettings)} == set(params) - supplied
    for name, param in params.items():
        if name not in supplied and isinstance(param.default, int | float):
            assert hints[name] == type(param.default) | None, name


def test_spec_mlm_values_reach_train_lm_converted(tmp_path):
    spec = parse_spec(spec_dict(tmp_path, mlm={"lr": "1e-3", "steps": 20.0, "dropout": None}))
    assert spec.mlm == {"lr": 1e-3, "steps": 20}
    assert isinstance(spec.mlm["steps"], int)


def test_matrix_is_the_product_minus_exclusions(tmp_path):
    spec = parse_spec(spec_dict(tmp_path, exclude=[{"model": "random1", "dataset": "vid"}]))
    names = [c.filename() for c in spec.cells()]
    assert len(names) == 2 * 2 * 2 - 2
    assert "random1/vid__retrieval.json" not in names and "random/vid__probe.json" in names


def test_run_writes_one_result_per_cell_and_skips_finished_ones(tmp_path):
    spec = parse_spec(spec_dict(tmp_path))
    first = Runner(spec, quiet=True).run()
    assert len(first.done) == 8 and not first.failed
    for name in first.done:
        result = load_result(tmp_path / "out" / "results" / name)
        assert result.ok and result.versions["vilem"]
        assert result.model.request == {"spec": result.model.spec}
        assert result.protocol.bootstrap == 10 and result.dataset.key in ("syn", "vid")
    cell = tmp_path / "out" / "results" / "random" / "syn__retrieval.json"
    before = cell.stat().st_mtime_ns
    second = Runner(spec, quiet=True).run()
    assert second.done == [] and len(second.skipped) == 8
    assert cell.stat().st_mtime_ns == before
    third = Runner(spec, rerun=True, quiet=True).run()
    assert len(third.done) == 8 and cell.stat().st_mtime_ns != before


def test_a_failing_cell_is_recorded_and_the_rest_go_on(tmp_path):
    raw = spec_dict(tmp_path)
    raw["models"]["broken"] = {"spec": f"vilem:{tmp_path / 'no-checkpoint'}"}
    summary = Runner(parse_spec(raw), quiet=True).run()
    assert len(summary.failed) == 4 and len(summary.done) == 8
    failed = json.loads((tmp_path / "out" / "results" / "broken" / "syn__probe.json").read_text())
    assert failed["status"] == "failed" and "no-checkpoint" in failed["error"]
    # the failure carries the protocol the cell was planned with
    assert failed["protocol"]["bootstrap"] == 10 and failed["dataset"]["key"] == "syn"
    # failed cells are retried on the next run
    again = Runner(parse_spec(raw), quiet=True).run()
    assert len(again.failed) == 4 and again.done == []


def test_missing_data_typos_and_a_wrong_baseline_fail_before_any_work(tmp_path):
    raw = spec_dict(tmp_path)
    raw["datasets"]["coco"] = {"dataset": "coco", "root": str(tmp_path / "no-coco")}
    with pytest.raises(VilemError, match="datasets.coco: dataset root for 'coco' not found"):
        Runner(parse_spec(raw), quiet=True).run()
    assert not (tmp_path / "out" / "results").exists()
    raw = spec_dict(tmp_path)
    raw["datasets"]["syn"]["options"]["confg"] = {}
    with pytest.raises(VilemError, match="datasets.syn: .*confg"):
        Runner(parse_spec(raw), quiet=True).run()
    raw = spec_dict(tmp_path)
    raw["models"]["itc"] = {"train": "small-itc", "overrides": ["optim.stesp=3"]}
    with pytest.raises(VilemError, match="models.itc: .*stesp"):
        Runner(parse_spec(raw), quiet=True).run()
    raw["models"]["itc"] = {"train": "small-itcc"}
    with pytest.raises(VilemError, match="models.itc: .*small-itcc"):
        Runner(parse_spec(raw), quiet=True).run()
    with pytest.raises(ConfigError, match="--baseline: no model 'randm' .*did you mean 'random'"):
        Runner(parse_spec(spec_dict(tmp_path)), quiet=True, baseline="randm").run()
    assert not (tmp_path / "out" / "results").exists()


def test_a_changed_protocol_or_model_reruns_the_cell_and_says_why(tmp_path, capsys):
    raw = spec_dict(tmp_path, tasks=["retrieval"])
    Runner(parse_spec(raw), quiet=True).run()
    cell = tmp_path / "out" / "results" / "random" / "syn__retrieval.json"
    raw["bootstrap"] = 20
    summary = Runner(parse_spec(raw)).run()
    assert len(summary.done) == 4 and summary.skipped == []
    assert "rerunning random/syn__retrieval.json: the protocol changed (bootstrap 10 -> 20)" in (
        capsys.readouterr().out
    )
    assert load_result(cell).protocol.bootstrap == 20
    raw["models"]["random"]["spec"] = "random:7"
    summary = Runner(parse_spec(raw)).run()
    assert sorted(summary.done) == ["random/syn__retrieval.json", "random/vid__retrieval.json"]
    assert "the model changed (spec random -> random:7)" in capsys.readouterr().out
    raw["datasets"]["syn"]["split"] = "val"
    summary = Runner(parse_spec(raw), quiet=True).run()
    assert sorted(summary.done) == ["random/syn__retrieval.json", "random1/syn__retrieval.json"]
    assert load_result(cell).dataset.split == "val"


def test_a_grouped_item_to_text_dataset_is_its_own_protocol_for_retrieval_only(tmp_path, capsys):
    raw = spec_dict(tmp_path, models={"random": {"spec": "random"}})
    raw["datasets"]["vid"]["i2t_ranking"] = "grouped"
    Runner(parse_spec(raw), quiet=True).run()
    results = tmp_path / "out" / "results" / "random"
    grouped = load_result(results / "vid__retrieval.json")
    assert grouped.protocol.settings == {"i2t_ranking": "grouped"}
    assert load_result(results / "vid__probe.json").protocol.settings == {}
    assert load_result(results / "syn__retrieval.json").protocol.settings == {}
    del raw["datasets"]["vid"]["i2t_ranking"]
    summary = Runner(parse_spec(raw)).run()
    assert summary.done == ["random/vid__retrieval.json"]  # the other cells are reused
    assert "rerunning random/vid__retrieval.json: the protocol changed (settings" in (
        capsys.readouterr().out
    )
    plain = load_result(results / "vid__retrieval.json")
    assert plain.protocol.settings == {} and plain.metrics["t2i_R@1"] == grouped.metrics["t2i_R@1"]
    assert plain.metrics["i2t_R@1"] <= grouped.metrics["i2t_R@1"]


def test_a_failed_rerun_never_replaces_an_ok_result(tmp_path):
    raw = spec_dict(tmp_path, tasks=["retrieval"])
    Runner(parse_spec(raw), quiet=True).run()
    cell = tmp_path / "out" / "results" / "random1" / "syn__retrieval.json"
    before = cell.read_bytes()
    raw["models"]["random1"]["spec"] = f"vilem:{tmp_path / 'gone'}"
    summary = Runner(parse_spec(raw), quiet=True).run()
    assert "random1/syn__retrieval.json" in summary.failed
    assert cell.read_bytes() == before
    beside = cell.with_name("syn__retrieval.failed.json")
    assert load_result(beside).status == "failed"
    # the leaderboard still shows the good result, under its own protocol
    from vilem.results import collect

    records, _ = collect(tmp_path / "out" / "results")
    ok = [r for r in records if r.model.name == "random1" and r.dataset.key == "syn" and r.ok]
    assert len(ok) == 1


def test_a_cell_locked_by_a_live_run_is_left_alone(tmp_path):
    spec = parse_spec(spec_dict(tmp_path, tasks=["retrieval"]))
    lock_path = tmp_path / "out" / "results" / "random" / "syn__retrieval.json.lock"
    holder = CellLock(lock_path)
    assert holder.acquire()
    summary = Runner(spec, quiet=True).run()
    assert summary.busy == [f"random/syn__retrieval.json (pid {os.getpid()})"]
    assert not (tmp_path / "out" / "results" / "random" / "syn__retrieval.json").exists()
    holder.release()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    import socket

    lock_path = tmp_path / "x.lock"
    lock_path.write_text(f"{socket.gethostname()} 999999999\n")
    lock = CellLock(lock_path)
    assert lock.acquire()
    lock.release()
    assert not lock_path.exists()


def test_bench_cli_reports_spec_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_dict(tmp_path, tasks=["probes"])))
    assert main(["bench", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'probes' (did you mean 'probe'?)" in err and "Traceback" not in err
    assert main(["bench", str(tmp_path / "missing.yaml")]) == 2


def test_default_spec_is_valid_and_its_quick_version_is_toy_scale():
    assert len(load_spec(REPO / "benchmarks" / "ablations.yaml").cells()) == 6 * 3
    full = load_spec(REPO / "benchmarks" / "default.yaml")
    quick = load_spec(REPO / "benchmarks" / "default.yaml", quick=True, out="q")
    assert {"itc", "vilem"} <= {m.name for m in full.models}
    assert set(full.tasks) == {"retrieval", "probe", "proofread"}
    # the same matrix at toy scale: small generated data, a few steps, fewer resamples
    assert quick.is_quick and not full.is_quick
    assert set(quick.cells()) <= set(full.cells())
    assert quick.bootstrap < full.bootstrap
    assert "optim.steps=12" in quick.quick["train_overrides"]
    assert quick.datasets[0].root == "q/data/synthetic"


@pytest.mark.slow
def test_quick_default_bench_end_to_end_then_resume_and_report(tmp_path, capsys, monkeypatch):
    # as a new user would, from a folder that is not the repository: the spec is packaged
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "bench" / "default-quick"
    code = main(["bench", "--quick", "--quiet", "--baseline", "itc"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    results = sorted(p.relative_to(out / "results").as_posix()
                     for p in (out / "results").rglob("*.json"))  # fmt: skip
    assert "vilem/synthetic__proofread.json" in results
    assert "vilem/synthetic-video__probe.json" in results  # zero-shot transfer to video
    # the main job scores every video protocol: multi-sentence, one caption, paragraph
    for key in ("synthetic-video", "synthetic-video-1k", "synthetic-video-para"):
        assert f"vilem/{key}__retrieval.json" in results
    para = load_result(out / "results" / "vilem" / "synthetic-video-para__retrieval.json")
    assert para.dataset.protocol == "paragraph" and para.dataset.counts["texts"] == 8
    assert "itc/synthetic__proofread.json" not in results  # not applicable: no heads
    for name in results:
        result = load_result(out / "results" / name)
        assert result.ok and result.protocol.quick and result.toy, name
    assert "Δ rsum" in printed and "| vilem " in printed
    # a killed run resumes: only the missing cell is redone, trained models are reused
    (out / "results" / "vilem" / "synthetic__probe.json").unlink()
    assert main(["bench", "default", "--quick", "--quiet"]) == 0
    assert f"1 run, {len(results) - 1} already done" in capsys.readouterr().out
    assert main(["report", str(out / "results"), "--out", str(tmp_path / "rep"),
                 "--baseline", "itc"]) == 0  # fmt: skip
    assert (tmp_path / "rep" / "report.html").read_text().count("data:image/png;base64") >= 3
