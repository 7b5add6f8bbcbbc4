"""``vilem migrate``: schema-1 results of a bench folder become schema 2 with the protocol of the
spec that made them; the numbers and the leaderboard stay the same."""

import json

from test_bench import spec_dict

from vilem.bench.runner import Runner
from vilem.bench.spec import parse_spec
from vilem.cli import main
from vilem.report.tables import leaderboard
from vilem.results import collect, load_result


def _as_version_1(path):
    """Rewrite a result file as vilem wrote it before the protocol record."""
    data = json.loads(path.read_text())
    model = data["model"]
    moved = ("setting", "train_seed", "train_log")
    data["extra"] |= {k: model.pop(k) for k in moved if model.get(k)}
    for key in ("protocol", "examples"):
        data.pop(key)
    for key in ("request", "setting", "train_seed", "train_log"):
        model.pop(key, None)
    for key in ("key", "protocol", "clip_window"):
        data["dataset"].pop(key)
    data["schema_version"] = 1
    path.write_text(json.dumps(data))


def test_migrate_gives_v1_results_the_protocol_their_spec_ran(tmp_path, capsys):
    raw = spec_dict(tmp_path, tasks=["retrieval"])
    Runner(parse_spec(raw), quiet=True).run()
    results = tmp_path / "out" / "results"
    files = sorted(results.rglob("*.json"))
    fresh = {p: load_result(p) for p in files}
    for p in files:
        _as_version_1(p)
    old_records, _ = collect(results)
    before = leaderboard(old_records, "retrieval").replace("### synthetic/", "### syn/")
    assert all(r.protocol is None for r in old_records)
    spec_path = tmp_path / "spec.json"  # YAML is a superset of JSON
    spec_path.write_text(json.dumps(raw))
    assert main(["migrate", str(results), "--spec", str(spec_path), "--dry-run"]) == 0
    assert all(load_result(p).schema_version == 1 for p in files)
    assert main(["migrate", str(results), "--spec", str(spec_path)]) == 0
    assert f"migrated {len(files)} result file(s)" in capsys.readouterr().out
    for p in files:
        new = load_result(p)
        assert new.schema_version == 2 and new.extra["migrated"]["from_schema"] == 1
        assert new.metrics == fresh[p].metrics and new.model.request == fresh[p].model.request
        expected = fresh[p].benchmark()
        got = new.benchmark()
        # what version 1 never recorded stays unknown
        for key in ("protocol", "clip_window", "decoding"):
            expected.pop(key), got.pop(key)
        assert got == expected
    records, _ = collect(results)
    # the same tables, the spec's key naming the dataset (version 1 files had no key)
    after = leaderboard(records, "retrieval").replace("### synthetic-video/", "### vid/")
    assert after == before.replace("### synthetic-video/", "### vid/")
    # a second run finds nothing to do; a file of another layout is refused, nothing written
    assert main(["migrate", str(results), "--spec", str(spec_path)]) == 0
    assert "migrated 0 result file(s) to schema 2 (4 already were)" in capsys.readouterr().out
