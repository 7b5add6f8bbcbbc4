import argparse

import pytest

from vilem.errors import ConfigError, DataError
from vilem.report.cli import add_parsers


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vilem")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_leaderboard_prints_markdown_and_warns_about_skipped_files(rec, tmp_path, capsys):
    results = rec.save(tmp_path, [rec.retrieval("A"), rec.retrieval("B", [50] * 10)])
    (tmp_path / "junk.json").write_text("[]")
    assert run(["leaderboard", str(results), "--baseline", "B", "--task", "retrieval"]) == 0
    out, err = capsys.readouterr()
    assert "### synthetic/test — retrieval" in out and "Δ rsum" in out
    assert "skipped 1 file(s)" in err and "junk.json" in err


def test_leaderboard_writes_csv_to_a_file(rec, tmp_path):
    results = rec.save(tmp_path / "res", [rec.retrieval("A")])
    target = tmp_path / "out" / "board.csv"
    assert run(["leaderboard", str(results), "--format", "csv", "--out", str(target)]) == 0
    assert target.read_text().startswith("dataset,split,task,protocol,toy,model,")


def test_leaderboard_unknown_baseline_names_the_closest_model(rec, tmp_path):
    results = rec.save(tmp_path, [rec.retrieval("itc-base"), rec.retrieval("vilem")])
    with pytest.raises(ConfigError, match="did you mean 'itc-base'"):
        run(["leaderboard", str(results), "--baseline", "itc_base"])


def test_leaderboard_of_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no vilem result files found"):
        run(["leaderboard", str(tmp_path)])


def test_report_command_writes_both_files(rec, tmp_path, capsys):
    results = rec.save(tmp_path / "res", [rec.retrieval("A"), rec.retrieval("B", [50] * 10)])
    out = tmp_path / "rep"
    assert run(["report", str(results), "--out", str(out), "--baseline", "B", "--title", "T"]) == 0
    assert (out / "report.md").read_text().startswith("# T")
    assert (out / "report.html").is_file()
    assert "report written to" in capsys.readouterr().out
