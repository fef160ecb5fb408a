"""The `nanorec` command line on real stage outputs of the synthetic shop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from typer.testing import CliRunner

from nanorec.cli import app, report_errors
from nanorec.commands.recommend import IdType, RequestError, resolve_items
from nanorec.inspect import PLOT_FILES

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def command_names() -> list[str]:
    return [c.name or c.callback.__name__ for c in app.registered_commands]


@pytest.fixture(scope="module")
def small_ingest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingest folder of a 60-user synthetic shop, written by the real stage."""
    folder = tmp_path_factory.mktemp("small")
    params = folder / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "ingest": {"synthetic_users": 60, "synthetic_items": 40},
                "predict": {"k": 5},
            }
        )
    )
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/ingest.py"),
            "--params",
            str(params),
            "--out",
            str(folder / "ingest"),
            "--metrics",
            str(folder / "ingest.json"),
        ],
        check=True,
        capture_output=True,
    )
    return folder


def items_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_idx": [1, 2, 3],
            "item_id": [10, 11, 12],
            "parent_asin": ["B0AAA", "11", ""],
            "title": ["a", "b", "c"],
        }
    )


# Fast tests: no trained model needed.


def test_help_on_every_command():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    assert "recommend" in result.output
    assert "inspect" in result.output
    for name in command_names():
        result = invoke(name, "--help")
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert "Usage" in result.output


def test_resolve_items_reads_asins_and_item_ids():
    resolved = resolve_items(["B0AAA", "12", "10"], items_frame())
    assert list(resolved) == [1, 3, 1]


def test_resolve_items_rejects_unknown_ids():
    with pytest.raises(RequestError, match="'nope', '99'") as caught:
        resolve_items(["B0AAA", "nope", "99"], items_frame())
    assert caught.value.option == "--history"


def test_resolve_items_rejects_ambiguous_id():
    # "11" is the ASIN of item_idx 2 and the item_id of item_idx 2: not ambiguous.
    assert list(resolve_items(["11"], items_frame())) == [2]
    items = items_frame()
    items.loc[0, "parent_asin"] = "12"  # ASIN of idx 1, item_id of idx 3
    with pytest.raises(RequestError, match="--id-type"):
        resolve_items(["12"], items)
    assert list(resolve_items(["12"], items, IdType.asin)) == [1]
    assert list(resolve_items(["12"], items, IdType.item_id)) == [3]


def test_resolve_items_id_type_restricts_columns():
    with pytest.raises(RequestError, match="parent_asin"):
        resolve_items(["10"], items_frame(), IdType.asin)
    with pytest.raises(RequestError, match="item_id"):
        resolve_items(["B0AAA"], items_frame(), IdType.item_id)


def test_recommend_unknown_item_exits_nonzero(small_ingest):
    result = invoke(
        "recommend",
        "--history",
        "S000000001,NOT-AN-ITEM",
        "--ingested",
        small_ingest / "ingest",
        "--params",
        small_ingest / "params.yaml",
        "--model-dir",
        small_ingest / "no-model",
    )
    assert result.exit_code != 0
    assert "NOT-AN-ITEM" in result.output
    assert "not found" in result.output


def test_recommend_unknown_user_exits_nonzero(small_ingest):
    result = invoke(
        "recommend",
        "--user",
        "987654",
        "--ingested",
        small_ingest / "ingest",
        "--params",
        small_ingest / "params.yaml",
    )
    assert result.exit_code != 0
    assert "987654" in result.output


def test_recommend_needs_user_or_history(small_ingest):
    result = invoke("recommend", "--ingested", small_ingest / "ingest")
    assert result.exit_code != 0
    assert "exactly one of --user and --history" in result.output


def test_recommend_missing_model_names_folder(small_ingest):
    missing = small_ingest / "no-model"
    result = invoke(
        "recommend",
        "--user",
        "0",
        "--ingested",
        small_ingest / "ingest",
        "--params",
        small_ingest / "params.yaml",
        "--model-dir",
        missing,
    )
    assert result.exit_code == 1
    assert str(missing / "config.json") in result.output


def test_inspect_writes_text_and_pngs(small_ingest, tmp_path):
    out = tmp_path / "report"
    result = invoke(
        "inspect",
        "--ingested",
        small_ingest / "ingest",
        "--vectors",
        tmp_path / "absent.parquet",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "History length" in result.output
    for name in PLOT_FILES:
        png = (out / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 10_000, name
    summary = json.loads((out / "summary.json").read_text())
    ingest = json.loads((small_ingest / "ingest.json").read_text())
    for key in ("n_users", "n_items", "n_interactions", "n_test_users"):
        assert summary[key] == ingest[key], key
    assert summary["vectors"] is None
    assert (out / "summary.txt").read_text().startswith("Ingested data in")


def test_inspect_missing_folder_exits_1(tmp_path):
    result = invoke("inspect", "--ingested", tmp_path / "nothing", "--out", tmp_path)
    assert result.exit_code == 1
    assert "dvc repro ingest" in result.output


def assert_one_line_error(result, *fragments: str) -> None:
    """Check a failed command: exit 1, one stderr line with every fragment."""
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, fragment


def test_recommend_corrupt_items_table_one_line(small_ingest, tmp_path):
    ingested = tmp_path / "ingest"
    shutil.copytree(small_ingest / "ingest", ingested)
    (ingested / "items.parquet").write_bytes(b"junk!")
    result = invoke(
        "recommend",
        "--user",
        "0",
        "--ingested",
        ingested,
        "--params",
        small_ingest / "params.yaml",
    )
    assert_one_line_error(
        result,
        f"{ingested / 'items.parquet'} is not a valid Parquet file",
        "dvc repro ingest",
    )


def test_recommend_truncated_config_one_line(small_ingest, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model": "transf')
    result = invoke(
        "recommend",
        "--user",
        "0",
        "--ingested",
        small_ingest / "ingest",
        "--params",
        small_ingest / "params.yaml",
        "--model-dir",
        model_dir,
    )
    assert_one_line_error(result, f"{model_dir / 'config.json'} is not valid JSON")


def test_recommend_quiet_faiss_and_missing_weights(small_ingest, tmp_path):
    # A baseline model folder without weights: loading it imports faiss, whose
    # loader logs at INFO, and then fails on the missing safetensors file.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model": "svd"}')
    args = ["--user", "0", "--ingested", small_ingest / "ingest"]
    args += ["--params", small_ingest / "params.yaml", "--model-dir", model_dir]
    result = subprocess.run(
        [sys.executable, "-m", "nanorec.cli", "recommend", *map(str, args)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "faiss.loader" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot read the model weights {model_dir}" in result.stderr


def test_inspect_corrupt_vectors_one_line(small_ingest, tmp_path):
    vectors = tmp_path / "bad.parquet"
    vectors.write_bytes(b"junk!")
    result = invoke(
        "inspect",
        "--ingested",
        small_ingest / "ingest",
        "--vectors",
        vectors,
        "--out",
        tmp_path / "report",
    )
    assert_one_line_error(result, f"{vectors} is not a valid Parquet file", "--vectors")


def test_inspect_out_is_a_file_one_line(small_ingest, tmp_path):
    out = tmp_path / "report"
    out.write_text("a plain file")
    result = invoke(
        "inspect",
        "--ingested",
        small_ingest / "ingest",
        "--vectors",
        tmp_path / "absent.parquet",
        "--out",
        out,
    )
    assert_one_line_error(result, f"{out} is a file, not a folder")
    assert "Free disk space" not in result.stderr
    assert out.read_text() == "a plain file"


def test_report_errors_keeps_bug_tracebacks():
    def broken() -> None:
        raise KeyError("a bug, not an input problem")

    with pytest.raises(KeyError):
        report_errors(broken)()


def test_recommend_outside_project_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("recommend", "--user", "0")
    assert_one_line_error(
        result,
        f"params file params.yaml does not exist (relative to the current folder "
        f"{os.getcwd()})",
        "run from the project folder or pass --params PATH",
    )


def test_inspect_outside_project_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("inspect")
    assert_one_line_error(
        result,
        f"(relative to the current folder {os.getcwd()})",
        "pass --ingested",
    )


def test_recommend_bad_params_file_named(small_ingest, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("predict:\n  k: ten\n")
    result = invoke(
        "recommend",
        "--user",
        "0",
        "--ingested",
        small_ingest / "ingest",
        "--params",
        params,
    )
    assert_one_line_error(
        result, f"params file {params}: predict.k='ten' must be an integer"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--k", "0", "predict.k=0 must be greater than 0"),
        ("--strategy", "beam", "predict.strategy='beam'"),
    ],
)
def test_recommend_bad_flag_names_flag(small_ingest, flag, value, message):
    result = invoke(
        "recommend",
        "--user",
        "0",
        flag,
        value,
        "--ingested",
        small_ingest / "ingest",
        "--params",
        small_ingest / "params.yaml",
    )
    assert result.exit_code == 2
    assert f"Invalid value for {flag}" in result.output
    assert message in result.output


# Slow tests: one `dvc repro` of the small synthetic pipeline, shared by all.


def recommend_json(repo: Path, *args: str | Path) -> dict:
    result = invoke(
        "recommend",
        "--json",
        "--ingested",
        repo / "data/ingest",
        "--model-dir",
        repo / "data/model",
        "--params",
        repo / "params.yaml",
        *args,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_recommend_matches_predict_submission(reproduced_project):
    repo = reproduced_project
    submission = pd.read_csv(repo / "data/submission.csv", dtype={"predictions": str})
    picks = submission.iloc[[0, 1, 57, 200, len(submission) - 1]]
    for user_id, predictions in zip(picks["user_id"], picks["predictions"]):
        answer = recommend_json(repo, "--user", str(user_id))
        expected = [int(x) for x in predictions.split()]
        assert [item["item_id"] for item in answer["items"]] == expected, user_id
        assert answer["source"] == "model"
        assert answer["score"] == "model"
        scores = [item["score"] for item in answer["items"]]
        assert scores == sorted(scores, reverse=True), user_id


@pytest.mark.slow
def test_recommend_history_of_asins_matches_user(reproduced_project):
    repo = reproduced_project
    interactions = pd.read_parquet(repo / "data/ingest/interactions.parquet")
    items = pd.read_parquet(repo / "data/ingest/items.parquet")
    rows = interactions[interactions["user_id"] == 5].sort_values("position")
    asin_of = dict(zip(items["item_id"], items["parent_asin"]))
    asins = [asin_of[i] for i in rows["item_id"]]

    by_user = recommend_json(repo, "--user", "5")
    by_asins = recommend_json(repo, "--history", ",".join(asins))
    by_ids = recommend_json(repo, "--history", " ".join(map(str, rows["item_id"])))
    assert by_asins["user_id"] is None
    assert by_asins["n_history"] == len(rows)
    assert by_asins["items"] == by_user["items"]
    assert by_ids["items"] == by_user["items"]


@pytest.mark.slow
def test_recommend_empty_history_is_popularity(reproduced_project):
    repo = reproduced_project
    answer = recommend_json(repo, "--history", "", "--k", "4")
    interactions = pd.read_parquet(repo / "data/ingest/interactions.parquet")
    counts = interactions["item_id"].value_counts()
    assert answer["source"] == "popularity"
    assert answer["score"] == "purchases"
    assert len(answer["items"]) == 4
    for item in answer["items"]:
        assert item["score"] == counts[item["item_id"]]
    scores = [item["score"] for item in answer["items"]]
    assert scores == list(counts.sort_values(ascending=False).to_numpy()[:4])

    table = invoke(
        "recommend",
        "--history",
        "",
        "--ingested",
        repo / "data/ingest",
        "--model-dir",
        repo / "data/model",
        "--params",
        repo / "params.yaml",
    )
    assert table.exit_code == 0, table.output
    assert "popularity fallback" in table.stdout


@pytest.mark.slow
def test_recommend_plain_table_lists_titles(reproduced_project):
    repo = reproduced_project
    result = invoke(
        "recommend",
        "--user",
        "3",
        "--k",
        "3",
        "--ingested",
        repo / "data/ingest",
        "--model-dir",
        repo / "data/model",
        "--params",
        repo / "params.yaml",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("user 3 (")
    assert lines[1].split() == ["rank", "item_id", "parent_asin", "title", "score"]
    answer = recommend_json(repo, "--user", "3", "--k", "3")
    for line, item in zip(lines[2:5], answer["items"]):
        assert item["title"] in line
        assert line.split()[:2] == [str(item["rank"]), str(item["item_id"])]


@pytest.mark.slow
def test_recommend_generative_reports_rank_scores(reproduced_project):
    repo = reproduced_project
    oneshot = recommend_json(repo, "--user", "9", "--k", "5")
    generative = recommend_json(
        repo, "--user", "9", "--k", "5", "--strategy", "generative"
    )
    assert generative["score"] == "rank"
    assert [item["score"] for item in generative["items"]] == [5, 4, 3, 2, 1]
    # Greedy decoding picks the one-shot favourite first.
    assert generative["items"][0]["item_id"] == oneshot["items"][0]["item_id"]
    ids = [item["item_id"] for item in generative["items"]]
    assert len(set(ids)) == 5


@pytest.mark.slow
def test_recommend_rejects_model_of_other_catalog(reproduced_project, small_ingest):
    result = invoke(
        "recommend",
        "--user",
        "0",
        "--ingested",
        small_ingest / "ingest",
        "--model-dir",
        reproduced_project / "data/model",
        "--params",
        small_ingest / "params.yaml",
    )
    assert result.exit_code == 1
    assert "another catalog" in result.output


@pytest.mark.slow
def test_inspect_on_pipeline_outputs(reproduced_project, tmp_path):
    repo = reproduced_project
    out = tmp_path / "inspect"
    result = invoke(
        "inspect",
        "--ingested",
        repo / "data/ingest",
        "--vectors",
        repo / "data/embed/item_vectors.parquet",
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_users"] == 400
    assert summary["n_items"] == 120
    vectors = summary["vectors"]
    assert vectors["n_rows"] == 120
    assert sum(vectors["sources"].values()) == 120
    for name in PLOT_FILES:
        png = (out / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 10_000, name
    ingest = json.loads((repo / "metrics/ingest.json").read_text())
    assert summary["n_interactions"] == ingest["n_interactions"]
    assert "vector" in (out / "summary.txt").read_text()
