"""The variants file and `nanorec leaderboard`."""

from __future__ import annotations

import json
import shutil

import pytest
import typer
import yaml
from conftest import GIT_IDENTITY, ROOT, run
from typer.testing import CliRunner

from nanorec import leaderboard
from nanorec.cli import app
from nanorec.params import load_section

ORIGINAL_ORDER = [
    "svd",
    "siglip_knn",
    "lightgcn",
    "transformer",
    "transformer_generative",
    "siglip_oneshot",
    "with_decay",
    "all_data",
]
# Variants added after the original eight, in file order.
EXTRA_VARIANTS = ["siglip_blend"]


def test_variants_file_lists_the_eight_variants_in_order():
    variants = leaderboard.load_variants(ROOT / "variants.yaml")
    assert [v.name for v in variants][:8] == ORIGINAL_ORDER
    assert [v.name for v in variants][8:] == EXTRA_VARIANTS
    comparable = {v.name: v.comparable for v in variants}
    assert comparable.pop("all_data") is False
    assert all(comparable.values())


@pytest.mark.parametrize("name", ORIGINAL_ORDER + EXTRA_VARIANTS)
def test_each_variant_gives_valid_params(name, tmp_path):
    variants = {v.name: v for v in leaderboard.load_variants(ROOT / "variants.yaml")}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in variants[name].overrides.items():
        section, option = key.split(".", 1)
        assert option in params[section], f"{name} sets unknown param {key}"
        params[section][option] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    for section in ("ingest", "split", "siglip_embed", "pack", "train", "predict"):
        load_section(path, section)


def test_variant_switches_match_their_meaning():
    variants = {
        v.name: v.overrides for v in leaderboard.load_variants(ROOT / "variants.yaml")
    }
    assert variants["svd"]["train.model"] == "svd"
    assert variants["siglip_knn"]["train.model"] == "siglip_knn"
    assert variants["lightgcn"]["train.model"] == "lightgcn"
    transformer = variants["transformer"]
    assert transformer["train.model"] == "transformer"
    assert transformer["train.siglip"] is False
    assert transformer["train.decay"] is False
    assert transformer["predict.strategy"] == "oneshot"
    generative = variants["transformer_generative"]
    assert generative["predict.strategy"] == "generative"
    assert generative["train.siglip"] is False
    assert variants["siglip_oneshot"]["train.siglip"] is True
    assert variants["siglip_oneshot"]["train.decay"] is False
    assert variants["with_decay"]["train.decay"] is True
    assert variants["with_decay"]["split.train_on_validation"] is False
    all_data = variants["all_data"]
    assert all_data["split.train_on_validation"] is True
    # all_data differs from with_decay only in its training rows.
    differing = {k for k in all_data if all_data[k] != variants["with_decay"].get(k)}
    assert differing == {"split.train_on_validation"}


def test_transformer_variants_share_one_recipe():
    raw = yaml.safe_load((ROOT / "variants.yaml").read_text())
    recipe = raw["groups"]["transformer_recipe"]
    assert recipe["train.max_steps"] > 0
    for name, spec in raw["variants"].items():
        uses_recipe = "transformer_recipe" in (spec.get("use") or [])
        assert uses_recipe == (spec["set"].get("train.model") is None), name
        # The extra variants may change the schedule on purpose (siglip_blend
        # stops at 600 steps); the original eight must share it exactly.
        if uses_recipe and name in ORIGINAL_ORDER:
            repeated = set(recipe) & set(spec["set"])
            assert not repeated, f"{name} repeats recipe keys {repeated}"


def write_variants(tmp_path, text):
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return path


def test_groups_apply_in_order_then_own_set(tmp_path):
    path = write_variants(
        tmp_path,
        """
groups:
  a: {train.lr: 0.1, train.max_steps: 5}
  b: {train.lr: 0.2}
variants:
  v:
    use: [a, b]
    set: {train.max_steps: 7}
""",
    )
    (variant,) = leaderboard.load_variants(path)
    assert variant.overrides == {"train.lr": 0.2, "train.max_steps": 7}
    assert variant.comparable


def test_unknown_group_is_rejected(tmp_path):
    path = write_variants(tmp_path, "variants:\n  v:\n    use: [nope]\n")
    with pytest.raises(leaderboard.VariantsError, match="unknown group 'nope'"):
        leaderboard.load_variants(path)


def test_key_without_section_is_rejected(tmp_path):
    path = write_variants(tmp_path, "variants:\n  v:\n    set: {model: svd}\n")
    with pytest.raises(leaderboard.VariantsError, match="keys must be section.key"):
        leaderboard.load_variants(path)


def test_missing_variants_file_is_rejected(tmp_path):
    with pytest.raises(leaderboard.VariantsError, match="does not exist"):
        leaderboard.load_variants(tmp_path / "absent.yaml")


def test_parse_sets_reads_yaml_values():
    parsed = leaderboard.parse_sets(
        ["ingest.format=challenge", "train.max_steps=20", "train.decay=true"]
    )
    assert parsed == {
        "ingest.format": "challenge",
        "train.max_steps": 20,
        "train.decay": True,
    }
    with pytest.raises(typer.BadParameter, match="section.key=value"):
        leaderboard.parse_sets(["max_steps=3"])


def test_set_arguments_quote_strings_that_look_like_bools():
    args = leaderboard.set_arguments({"train.decay": True, "ingest.path": "true"})
    assert args == ["-S", "train.decay=true", "-S", "ingest.path='true'"]


def test_select_keeps_file_order_and_rejects_unknown():
    variants = [leaderboard.Variant(n, {}) for n in ("a", "b", "c")]
    assert [v.name for v in leaderboard.select(variants, ["c,a"])] == ["a", "c"]
    assert len(leaderboard.select(variants, [])) == 3
    with pytest.raises(typer.BadParameter, match=r"unknown variant\(s\) \['z'\]"):
        leaderboard.select(variants, ["z"])


def exp_show(entries):
    """A `dvc exp show --json` document with one experiment per entry."""
    experiments = []
    for name, state, map10, stamp in entries:
        metrics = {}
        if map10 is not None:
            metrics = {
                "metrics/predict.json": {
                    "data": {
                        "map@10": map10,
                        "hr@10": 2 * map10,
                        "ndcg@10": 1.5 * map10,
                        "predict_seconds": 3.0,
                        "peak_rss_mib": 500.0,
                    }
                },
                "metrics/train.json": {
                    "data": {"train_seconds": 120.5, "peak_rss_mib": 900.0}
                },
            }
        experiments.append(
            {
                "name": name,
                "executor": {"state": state},
                "revs": [
                    {"name": name, "data": {"timestamp": stamp, "metrics": metrics}}
                ],
            }
        )
    workspace = {"rev": "workspace", "experiments": None, "data": {}}
    return [workspace, {"rev": "abc", "experiments": experiments}]


def test_collect_ranks_comparable_and_marks_all_data():
    variants = [
        leaderboard.Variant("svd", {}),
        leaderboard.Variant("transformer", {}),
        leaderboard.Variant("all_data", {}, comparable=False),
        leaderboard.Variant("lightgcn", {}),
    ]
    shown = exp_show(
        [
            ("svd", "success", 0.01, "2026-12-04T10:00:00"),
            ("transformer", "success", 0.04, "2026-12-04T10:01:00"),
            ("all_data", "success", 0.09, "2026-12-04T10:02:00"),
            ("lightgcn", "failed", None, "2026-12-04T10:03:00"),
        ]
    )
    results = {r.name: r for r in leaderboard.collect(shown, variants)}
    assert results["transformer"].rank == 1
    assert results["svd"].rank == 2
    assert results["all_data"].rank is None
    assert results["lightgcn"].state == "failed"
    assert results["lightgcn"].rank is None
    assert results["svd"].metrics["train s"] == 120.5
    assert results["svd"].metrics["predict peak MiB"] == 500.0

    table = leaderboard.markdown_table(list(results.values()))
    rows = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    assert rows["transformer"].startswith("| 1 |")
    assert rows["all_data"].startswith("| n/c |")
    assert leaderboard.NOT_COMPARABLE in rows["all_data"]
    assert "dvc queue logs lightgcn" in rows["lightgcn"]


def test_collect_takes_latest_of_same_name_and_reports_missing():
    shown = exp_show(
        [
            ("svd", "success", 0.01, "2026-12-04T10:00:00"),
            ("svd", "success", 0.02, "2026-12-04T11:00:00"),
        ]
    )
    variants = [leaderboard.Variant("svd", {}), leaderboard.Variant("knn", {})]
    svd, missing = leaderboard.collect(shown, variants)
    assert svd.metrics["MAP@10"] == 0.02
    assert missing.state == "missing"


def test_missing_experiment_note_says_run_first():
    shown = exp_show([("svd", "success", 0.01, "2026-12-04T10:00:00")])
    variants = [leaderboard.Variant("svd", {}), leaderboard.Variant("knn", {})]
    table = leaderboard.markdown_table(leaderboard.collect(shown, variants))
    rows = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    assert "experiment not found: run it first" in rows["knn"]
    assert "without --no-run" in rows["knn"]
    assert "dvc queue logs" not in rows["knn"]


def test_no_run_without_experiments_says_run_first(project, tmp_path):
    variants = tmp_path / "variants.yaml"
    variants.write_text("variants:\n  svd:\n    set:\n      train.model: svd\n")
    out = tmp_path / "board"
    args = ["leaderboard", "--no-run", "--repo", str(project)]
    args += ["--variants", str(variants), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "experiment not found: run it first" in result.stdout
    assert "no experiment found for ['svd']" in result.stderr
    assert "without --no-run" in result.stderr
    assert "dvc queue logs" not in result.output


def test_write_outputs_makes_png_table_and_json(tmp_path):
    results = [
        leaderboard.Result("svd", True, "success", {"MAP@10": 0.01}, rank=2),
        leaderboard.Result("transformer", True, "success", {"MAP@10": 0.05}, rank=1),
        leaderboard.Result("all_data", False, "success", {"MAP@10": 0.06}),
    ]
    for result in results:
        result.metrics.update({"HR@10": 0.1, "NDCG@10": 0.05})
    table, chart, raw = leaderboard.write_outputs(results, tmp_path / "out")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| n/c | all_data |" in table.read_text()
    assert [r["name"] for r in json.loads(raw.read_text())] == [
        "svd",
        "transformer",
        "all_data",
    ]


@pytest.mark.slow
def test_leaderboard_runs_all_variants_on_synthetic_default(project, tmp_path):
    shutil.copy(ROOT / "variants.yaml", project / "variants.yaml")
    run(["git", "add", "variants.yaml"], project)
    run(["git", *GIT_IDENTITY, "commit", "-qm", "variants"], project)
    quick = [
        "train.max_steps=20",
        "train.eval_interval=10",
        "train.eval_users=100",
        "train.warmup_steps=5",
        "train.lightgcn_steps=20",
    ]
    out = tmp_path / "board"
    args = ["leaderboard", "--repo", str(project), "--out", str(out)]
    for value in quick:
        args += ["--set", value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)

    table = (out / "leaderboard.md").read_text()
    rows = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    names = ORIGINAL_ORDER + EXTRA_VARIANTS
    assert list(rows) == names
    assert rows["all_data"].startswith("| n/c |")
    ranked = [n for n in names if n != "all_data"]
    ranks = sorted(int(rows[n].split(" | ")[0][2:]) for n in ranked)
    assert ranks == list(range(1, len(ranked) + 1))
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"

    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }
    assert set(names) <= set(experiments)
    for name in names:
        metrics = experiments[name]["metrics"]["metrics/predict.json"]["data"]
        assert 0.0 <= metrics["map@10"] <= 1.0
    params = {
        name: experiments[name]["params"]["params.yaml"]["data"]
        for name in ORIGINAL_ORDER
    }
    assert params["svd"]["train"]["model"] == "svd"
    assert params["lightgcn"]["train"]["lightgcn_steps"] == 20
    assert params["all_data"]["split"]["train_on_validation"] is True
    assert params["with_decay"]["split"]["train_on_validation"] is False
    assert params["transformer_generative"]["predict"]["strategy"] == "generative"
    assert params["transformer"]["train"]["max_steps"] == 20  # --set wins
