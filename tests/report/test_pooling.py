"""Pooling runs over training seeds: means, two-level intervals, paired deltas over seeds and
queries, comparison.json, and single-seed tables that stay exactly as they were."""

import csv
import io
import json

import pytest
from test_leaderboard import md_table

from vilem.cli import main
from vilem.report.compare import (
    comparison,
    modality,
    paired_delta,
    pool_records,
    pooled_paired_delta,
)
from vilem.report.report import build_report
from vilem.report.tables import leaderboard
from vilem.results import collect

N = 10
MIXED = [1] * 5 + [20] * 5  # half the queries at rank 1, half beyond 10: every recall is 50%


def seeded(builder, name, seed, *args, **kwargs):
    extra = {**kwargs.pop("extra", {}), "train_seed": seed}
    return builder(name, *args, extra=extra, **kwargs)


def test_pooled_value_is_the_mean_over_seeds_with_an_interval_around_it(rec):
    runs = [seeded(rec.retrieval, "A", 0, MIXED), seeded(rec.retrieval, "A", 1, [1] * N)]
    assert [r.metrics["rsum"] for r in runs] == [300.0, 600.0]
    pooled = pool_records(runs, resamples=300)
    assert pooled.metrics["rsum"] == 450.0
    assert pooled.metrics["t2i_R@1"] == 75.0
    assert pooled.metrics["t2i_medr"] == (10.5 + 1.0) / 2
    lo, hi = pooled.intervals["rsum"]
    # seed 0's query resamples range over 0..600, seed 1's are always 600
    assert 0.0 <= lo < 450.0 < hi <= 600.0
    assert pooled.extra["seeds"] == [0, 1] and pooled.per_query is None
    # a single run is returned as it is
    assert pool_records(runs[:1]) is runs[0]


def test_without_per_query_results_the_interval_resamples_seeds_only(rec):
    runs = [
        seeded(rec.retrieval, "A", 0, MIXED, per_query=False),
        seeded(rec.retrieval, "A", 1, [1] * N, per_query=False),
    ]
    pooled = pool_records(runs, resamples=400)
    # two seeds drawn with replacement: means 300, 450 or 600 -> the interval is [300, 600]
    assert pooled.metrics["rsum"] == 450.0
    assert pooled.intervals["rsum"] == [300.0, 600.0]


def test_leaderboard_pools_seeds_into_one_labelled_row(rec):
    records = [
        seeded(rec.retrieval, "A", 0, MIXED),
        seeded(rec.retrieval, "A", 1, [1] * N),
        rec.retrieval("random", [50] * N),
    ]
    rows = md_table(leaderboard(records, "retrieval"))
    assert set(rows) == {"A (2 seeds)", "random"}
    assert rows["A (2 seeds)"]["rsum ↑"].startswith("**450.0** ")
    assert rows["A (2 seeds)"]["t2i_R@1 ↑"].startswith("**75.0** ")
    assert rows["random"]["rsum ↑"] == "0.0"  # no interval recorded: none shown
    rows = list(csv.DictReader(io.StringIO(leaderboard(records, "retrieval", fmt="csv"))))
    row = next(r for r in rows if r["name"] == "A")
    assert (row["model"], row["status"], row["seeds"]) == ("A (2 seeds)", "ok", "2")
    assert (row["t2i_R@1"], row["rsum"], row["rsum_best"]) == ("75.0", "450.0", "true")


def test_pooled_delta_of_a_model_better_on_every_query_of_every_seed_is_significant(rec):
    good = [seeded(rec.retrieval, "good", s, [1] * N) for s in range(3)]
    base = [seeded(rec.retrieval, "base", s, [50] * N) for s in range(3)]
    same = [seeded(rec.retrieval, "same", s, [50] * N) for s in range(3)]
    d = pooled_paired_delta(good, base, "rsum", resamples=200)
    assert (d.value, d.lo, d.hi, d.significant, d.n_seeds) == (600.0, 600.0, 600.0, True, 3)
    flipped = pooled_paired_delta(base, good, "rsum", resamples=200)
    assert (flipped.value, flipped.verdict) == (-600.0, "worse")
    tie = pooled_paired_delta(same, base, "rsum", resamples=200)
    assert (tie.value, tie.lo, tie.hi, tie.significant) == (0.0, 0.0, 0.0, False)
    rows = md_table(leaderboard([*good, *base, *same], "retrieval", baseline="base"))
    assert rows["good (3 seeds)"]["Δ rsum"] == "+600.0 [+600.0, +600.0] †"
    assert rows["same (3 seeds)"]["Δ rsum"] == "+0.0 [+0.0, +0.0]"


def test_pooled_delta_pairs_seeds_and_uses_the_same_queries_for_both(rec):
    # the model is better on every query at seeds 1 and 2 but fails at seed 0, which the
    # baseline lacks: only seeds 1 and 2 are compared
    model = [seeded(rec.retrieval, "m", 0, [50] * N)]
    model += [seeded(rec.retrieval, "m", s, [1] * N) for s in (1, 2)]
    base = [seeded(rec.retrieval, "b", s, MIXED) for s in (1, 2)]
    d = pooled_paired_delta(model, base, "rsum", resamples=300)
    assert (d.value, d.n_seeds) == (300.0, 2)
    # per drawn seed the model scores 600 on any query set; the baseline's resamples vary, so
    # the interval is wide but above 0
    assert 0.0 < d.lo < 300.0 < d.hi <= 600.0 and d.significant
    # identical queries resampled for both: a model equal to the baseline on every seed ties
    # exactly, however the queries are drawn
    twin = [seeded(rec.retrieval, "t", s, MIXED) for s in (1, 2)]
    d = pooled_paired_delta(twin, base, "rsum", resamples=300)
    assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0)


def test_pooled_delta_of_probes_resamples_within_category_per_seed(rec):
    new = [seeded(rec.probe, "new", s, {"color": [1] * 10, "shape": [1] * 10}) for s in (0, 1)]
    base = [seeded(rec.probe, "base", s, {"color": [0] * 10, "shape": [1] * 10}) for s in (0, 1)]
    d = pooled_paired_delta(new, base, "macro", resamples=200)
    assert (d.value, d.lo, d.hi, d.verdict, d.n_seeds) == (50.0, 50.0, 50.0, "beats", 2)
    assert pooled_paired_delta(new, base, "acc_shape", resamples=200).verdict == "tie"


def test_untrained_baseline_stands_for_every_seed_and_one_seed_is_the_plain_delta(rec):
    model = [seeded(rec.retrieval, "m", 0, MIXED), seeded(rec.retrieval, "m", 1, [1] * N)]
    chance = [rec.retrieval("random", [50] * N)]  # no training seed
    d = pooled_paired_delta(model, chance, "rsum", resamples=200)
    assert (d.value, d.n_seeds) == (450.0, 2)
    single = pooled_paired_delta(model[:1], chance, "rsum")
    plain = paired_delta(model[0], chance[0], "rsum")
    assert (single.value, single.lo, single.hi) == (plain.value, plain.lo, plain.hi)
    assert pooled_paired_delta(model[:1], [seeded(rec.retrieval, "x", 5)], "rsum").value is None


def test_pooled_delta_without_per_query_results_resamples_seeds_only(rec):
    model = [seeded(rec.retrieval, "m", s, [1] * N, per_query=False) for s in (0, 1)]
    base = [seeded(rec.retrieval, "b", 0, MIXED), seeded(rec.retrieval, "b", 1, [50] * N)]
    d = pooled_paired_delta(model, base, "rsum", resamples=400)
    # per-seed deltas 300 and 600
    assert (d.value, d.lo, d.hi) == (450.0, 300.0, 600.0)
    assert "interval over seeds only" in d.note


@pytest.mark.parametrize("fmt", ["md", "csv", "latex", "html"])
def test_single_seed_tables_are_unchanged_by_a_recorded_training_seed(rec, fmt):
    def records(seed):
        extra = {} if seed is None else {"train_seed": seed}
        return [
            rec.retrieval("good", [1] * N, extra=extra),
            rec.retrieval("base", MIXED, extra=extra),
            rec.retrieval("old", [50] * N, per_query=False, extra=extra),
            rec.failed("broken"),
        ]

    before = leaderboard(records(None), "retrieval", baseline="base", fmt=fmt)
    assert leaderboard(records(0), "retrieval", baseline="base", fmt=fmt) == before
    if fmt != "csv":  # the CSV always has its seeds column
        assert "seeds" not in before  # no seeds label or legend line


def test_single_seed_delta_column_is_the_plain_paired_delta(rec):
    good, base = rec.retrieval("good", MIXED), rec.retrieval("base", [50] * N)
    d = paired_delta(good, base, "rsum")
    cell = md_table(leaderboard([good, base], "retrieval", baseline="base"))["good"]["Δ rsum"]
    assert cell == f"+{d.value:.1f} [+{d.lo:.1f}, +{d.hi:.1f}] †"


def test_collect_keeps_one_run_per_seed_and_drops_a_seedless_leftover(rec, tmp_path):
    rec.save(tmp_path, [seeded(rec.retrieval, "A", s) for s in (0, 1)] + [rec.retrieval("A")])
    records, problems = collect(tmp_path)
    assert sorted(r.model.train_seed for r in records) == [0, 1]
    assert len(problems) == 1 and "without a training seed" in problems[0].reason


def benchmark(rec):
    """Two seeds of vilem and itc on images and videos, and a fine-tuned video pair."""
    video = {"dataset": "synthetic-video", "modality": "video"}
    records = []
    for s, itc_ranks in ((0, [50] * N), (1, MIXED)):
        records += [
            seeded(rec.retrieval, "vilem", s, [1] * N),
            seeded(rec.retrieval, "itc", s, itc_ranks),
            seeded(rec.probe, "vilem", s, {"color": [1] * 10, "shape": [1] * 10}),
            seeded(rec.probe, "itc", s, {"color": [0] * 10, "shape": [1] * 10}),
            seeded(rec.retrieval, "vilem", s, [1] * N, **video),
            seeded(rec.retrieval, "itc", s, [3] * N, **video),
            seeded(rec.probe, "vilem", s, {"motion": [1] * 4}, **video),
            seeded(rec.probe, "itc", s, {"motion": [0] * 4}, **video),
            seeded(rec.retrieval, "vilem-video", s, [1] * N, **video),
            seeded(rec.retrieval, "itc-video", s, [1] * N, **video),
        ]
        proof = seeded(rec.retrieval, "vilem", s, metrics={"ed_f1": 40.0 + 20 * s,
                                                           "ec_accuracy": 10.0})  # fmt: skip
        proof.task = "proofread"
        records.append(proof)
    proof = seeded(rec.retrieval, "vilem", 0, metrics={"ed_f1": 20.0}, **video)
    proof.task = "proofread"
    return [*records, proof]


def test_comparison_has_pooled_deltas_per_task_and_category(rec):
    comp = comparison(benchmark(rec), "vilem", "itc", "vilem-video", "itc-video", resamples=200)
    assert (comp["model"], comp["baseline"], comp["seeds"]) == ("vilem", "itc", [0, 1])
    assert comp["datasets"] == {"image": "synthetic/test", "video": "synthetic-video/test"}
    d = comp["deltas"]
    assert set(d) == {"image_rsum", "image_probe_macro", "video_zero_shot_rsum",
                      "image_probe_color", "image_probe_shape", "video_probe_motion",
                      "video_finetuned_rsum"}  # fmt: skip
    # image: 600 - 0 at seed 0, 600 - 300 at seed 1
    assert d["image_rsum"]["delta"] == 450.0 and d["image_rsum"]["significant"] is True
    assert d["image_rsum"]["n_seeds"] == 2 and d["image_rsum"]["ci"][0] > 0
    assert d["image_probe_macro"] == {"delta": 50.0, "ci": [50.0, 50.0], "significant": True,
                                      "n_seeds": 2}  # fmt: skip
    assert d["image_probe_shape"]["delta"] == 0.0 and d["image_probe_shape"]["significant"] is False
    # video: rank 1 vs rank 3 -> R@1 100 vs 0 in both directions
    assert d["video_zero_shot_rsum"]["delta"] == 200.0
    assert d["video_probe_motion"]["delta"] == 100.0
    assert d["video_finetuned_rsum"]["delta"] == 0.0
    assert d["video_finetuned_rsum"]["significant"] is False
    only = comp["model_only"]
    assert only["image_ed_f1"]["value"] == 50.0 and only["image_ed_f1"]["n_seeds"] == 2
    assert only["image_ed_f1"]["ci"] == [40.0, 60.0]  # seeds only: no per-query recipe
    assert only["image_ec_accuracy"]["value"] == 10.0
    assert only["video_ed_f1"] == {"value": 20.0, "ci": None, "n_seeds": 1}
    json.dumps(comp)  # plain JSON


def test_comparison_scores_each_ablation_against_baseline_and_full_model(rec):
    ablation = [
        seeded(rec.retrieval, "abl", 0, MIXED),  # rsum 300: itc's seed 0 has 0, vilem's 600
        seeded(rec.probe, "abl", 0, {"color": [1] * 10, "shape": [0] * 10}),
    ]
    proof = seeded(rec.retrieval, "abl", 0, metrics={"ed_f1": 30.0, "ec_accuracy": 70.0})
    proof.task = "proofread"
    records = [*benchmark(rec), *ablation, proof]
    comp = comparison(records, "vilem", "itc", ablations=["abl"], resamples=200)
    abl = comp["ablations"]["abl"]
    assert abl["seeds"] == [0]  # paired with the others on the one seed it has
    assert abl["minus_itc"]["image_rsum"]["delta"] == 300.0
    assert abl["minus_itc"]["image_rsum"]["n_seeds"] == 1
    assert abl["minus_vilem"]["image_rsum"]["delta"] == -300.0
    # probe macro: abl 50 (colour 100, shape 0), itc 50 (0, 100), vilem 100
    assert abl["minus_itc"]["image_probe_macro"]["delta"] == 0.0
    assert abl["minus_vilem"]["image_probe_macro"]["delta"] == -50.0
    assert abl["model_only"]["image_ed_f1"]["value"] == 30.0
    assert abl["model_only"]["image_ec_accuracy"]["value"] == 70.0
    assert "ablations" not in comparison(records, "vilem", "itc", resamples=50)


def test_comparison_notes_what_is_missing(rec):
    comp = comparison([rec.retrieval("vilem"), rec.retrieval("itc", [50] * N)], "vilem", "itc")
    assert comp["seeds"] == [] and comp["deltas"]["image_rsum"]["n_seeds"] == 1
    assert comp["deltas"]["image_rsum"]["delta"] == 600.0
    missing = comp["deltas"]["video_zero_shot_rsum"]
    assert missing["delta"] is None and "on video data" in missing["note"]
    assert comp["model_only"]["image_ed_f1"]["value"] is None


def test_comparison_of_a_reduced_run_says_it_is_toy_scale(rec, tmp_path, capsys):
    full = [rec.retrieval("vilem"), rec.retrieval("itc", [50] * N)]
    assert comparison(full, "vilem", "itc")["toy"] is False
    quick = [rec.retrieval("vilem"), rec.retrieval("itc", [50] * N)]
    for r in quick:
        r.protocol.quick = True
    assert comparison(quick, "vilem", "itc")["toy"] is True
    # a reduced run of a model that is not compared does not mark the comparison
    other = rec.retrieval("random", [90] * N)
    other.protocol.limit = 5
    assert comparison([*full, other], "vilem", "itc")["toy"] is False
    results = rec.save(tmp_path / "res", quick)
    assert main(["compare", str(results), "--model", "vilem", "--baseline", "itc"]) == 0
    assert capsys.readouterr().out.startswith("toy scale (a --quick or --limit run)")


def test_modality_comes_from_the_dataset_block_else_the_adapter(rec):
    def of(name, modality=None):
        r = rec.retrieval("A", dataset=name)
        r.dataset.modality = modality
        return r

    assert modality(of("msrvtt", "video")) == "video"
    assert modality(of("synthetic-video")) == "video"
    assert modality(of("synthetic")) == "image"


def test_compare_command_writes_comparison_json(rec, tmp_path, capsys):
    image = [r for r in benchmark(rec) if r.dataset.name == "synthetic"]
    results = rec.save(tmp_path / "res", [r for r in image if r.task == "retrieval"])
    out = tmp_path / "c" / "comparison.json"
    assert main(["compare", str(results), "--model", "vilem", "--baseline", "itc",
                 "--out", str(out)]) == 0  # fmt: skip
    comp = json.loads(out.read_text())
    assert comp["deltas"]["image_rsum"]["delta"] == 450.0 and comp["seeds"] == [0, 1]
    printed = capsys.readouterr().out
    assert "| image_rsum" in printed
    # why a row has no value is printed beside the table, not only in the JSON
    reason = comp["deltas"]["video_zero_shot_rsum"]["note"]
    assert "\nnotes:\n" in printed and f"video_zero_shot_rsum: {reason}" in printed
    assert main(["compare", str(results), "--model", "itc", "--baseline", "vilem",
                 "--ablation", "vilem"]) == 0  # fmt: skip
    assert "| vilem − itc: image_rsum" in capsys.readouterr().out
    assert main(["compare", str(results), "--model", "vilem", "--baseline", "itc",
                 "--ablation", "abl"]) == 2  # fmt: skip
    assert "--ablation: no model 'abl' in the results" in capsys.readouterr().err
    assert main(["compare", str(results), "--model", "vilme", "--baseline", "itc"]) == 2
    err = capsys.readouterr().err
    assert "--model: no model 'vilme' in the results (did you mean 'vilem'?)" in err
    assert "Traceback" not in err


def test_report_findings_compare_over_seeds(rec, tmp_path):
    records = [r for r in benchmark(rec) if r.task == "retrieval"]
    results = rec.save(tmp_path / "res", records)
    md = build_report(results, tmp_path / "rep", baseline="itc").read_text()
    assert "- **vilem − itc**: Significantly better on synthetic/test RSUM (+450.0 [" in md
    assert "| vilem (2 seeds)" in md and "| itc (2 seeds) (baseline)" in md


def _at_ks(rec, name, ranks, ks, seed=None):
    """A retrieval record evaluated with ``--recall-k`` ``ks``: every query at ``ranks``."""
    from vilem import metrics as M
    from vilem.results import Protocol

    metrics = M.metrics_from_ranks(ranks, ranks, ks)
    pq = {"t2i_ranks": list(ranks), "i2t_ranks": list(ranks)}
    extra = {} if seed is None else {"train_seed": seed}
    protocol = Protocol(preprocessing={}, device="cpu", recall_ks=list(ks))
    return rec.make(
        name, "synthetic", "test", "image", "retrieval", metrics,
        per_query=pq, protocol=protocol, extra=extra,
    )  # fmt: skip


def test_deltas_and_pooled_intervals_sum_recall_at_the_runs_own_ks(rec):
    # every query at rank 20 (baseline) or 60 (model): R@1/5/10 are 0 for both, and only R@50
    # separates them, so at Ks (1, 5, 10, 50) rsum is 200 against 0 in every resample
    ks = (1, 5, 10, 50)
    base, model = _at_ks(rec, "base", [20] * N, ks), _at_ks(rec, "new", [60] * N, ks)
    assert (base.metrics["rsum"], model.metrics["rsum"]) == (200.0, 0.0)
    d = paired_delta(model, base, "rsum", resamples=200)
    assert (d.value, d.lo, d.hi, d.verdict) == (-200.0, -200.0, -200.0, "worse")
    # a recall the default Ks do not have gets its interval too
    assert paired_delta(model, base, "t2i_R@50", resamples=200).lo == -100.0
    # over seeds: the pooled interval and the pooled delta use the same Ks
    bases = [_at_ks(rec, "base", [20] * N, ks, seed=s) for s in (0, 1)]
    models = [_at_ks(rec, "new", [60] * N, ks, seed=s) for s in (0, 1)]
    assert pool_records(bases, resamples=200).intervals["rsum"] == [200.0, 200.0]
    pooled = pooled_paired_delta(models, bases, "rsum", resamples=200)
    assert (pooled.value, pooled.lo, pooled.hi) == (-200.0, -200.0, -200.0)
