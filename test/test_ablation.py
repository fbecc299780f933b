"""`mfaranet ablate`: a study's runs train, score and measure; the table matches eval-weights."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mfaranet_ros.cli import main
from mfaranet_ros.training.config import ConfigError, load_config
from mfaranet_ros.training.study import load_study

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "recipe": {
        "device": "cpu",
        "data": {"type": "generated", "train": {"frames": 4, "size": [48, 96], "seed": 0},
                 "val": None},
        "augment": {"crop_size": [32, 64], "scale_range": [1.0, 1.0], "rotate_p": 0.0},
        "loss": {"min_kept": 1000},
        "train": {"batch_size": 2, "iterations": 2, "workers": 0, "threads": 1,
                  "val_every": 0, "checkpoint_every": 1, "progress": False},
    },
    "seeds": [0],
    "evaluate": {"frames": 2, "size": [48, 96], "seed": 1000, "input_size": [48, 96]},
    "latency": {"input_size": [48, 96], "iterations": 2, "warmup": 1},
    "variants": [{"name": "full"}, {"name": "mean", "architecture": {"fusion": "mean"}}],
}


def _study(tmp_path, **changes) -> Path:
    values = {**TINY, "output_dir": str(tmp_path / "out"), **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_study_builds_one_recipe_per_run(tmp_path):
    study = load_study(str(_study(tmp_path, seeds=[3, 4])))
    runs = study.runs()
    assert [(r.variant.name, r.seed) for r in runs] == [
        ("full", 3), ("mean", 3), ("full", 4), ("mean", 4)]
    assert runs[1].config.model.architecture.fusion == "mean"
    assert runs[2].config.seed == 4 and runs[2].directory.endswith("runs/full/seed4")
    # apart from seed, architecture, folder and source line, every run has the same recipe
    a, b = runs[0].config, runs[3].config
    assert (a.train, a.augment, a.optim, a.loss, a.data) == (b.train, b.augment, b.optim,
                                                             b.loss, b.data)


@pytest.mark.parametrize("changes, message", [
    ({"variants": [{"name": "x", "architecture": {"fusion": "soft"}}]},
     "model.architecture: fusion 'soft' is unknown"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "names must be distinct"),
    ({"seeds": []}, "seeds: expected a list of distinct integers"),
    ({"reference": "nope"}, "reference 'nope' is not a variant"),
    ({"recipe": {"train": {"iters": 3}}}, "unknown config key recipe.train.iters"),
    ({"extra": 1}, "unknown study keys"),
    ({"evaluate": {"source": "val"}}, "the recipe has no validation split"),
    ({"evaluate": {"source": "folder"}}, "source folder needs the folder's path"),
])
def test_bad_studies_are_one_line_errors(tmp_path, capsys, changes, message):
    path = _study(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_study(str(path))
    assert main(["ablate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_default_study_and_training_recipe_with_a_variant():
    study = load_study(str(REPO / "config" / "ablation_default.yaml"))
    names = {v.name: v.parts for v in study.variants}
    assert names["full"] == {"backbone": "resnet18", "aggregation": "mfam", "alignment": "ram",
                             "fusion": "asfm"}
    assert {names["fpn"]["aggregation"], names["bilinear"]["alignment"], names["max"]["fusion"],
            names["mean"]["fusion"], names["r50"]["backbone"]} == {
        "fpn", "bilinear", "max", "mean", "resnet50"}
    assert len(study.seeds) >= 2
    gpu = load_study(str(REPO / "config" / "ablation_cityscapes.yaml"))
    r50 = next(r for r in gpu.runs() if r.variant.name == "r50")
    assert r50.config.model.backbone.endswith("resnet50-deep-stem.pth")
    assert r50.config.train.iterations == 42_400 and gpu.evaluate.source == "val"
    cfg = load_config(str(REPO / "config" / "train_synthetic.yaml"),
                      [("model.architecture.alignment", "direct")])
    assert cfg.model.architecture.alignment == "direct"


def _eval_weights(checkpoint: str, capsys) -> dict:
    assert main(["eval-weights", checkpoint, "--frames", "2", "--size", "48x96", "--seed", "1000",
                 "--input-size", "48x96", "--backend", "torch", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_tiny_study_table_matches_eval_weights_and_resumes(tmp_path, capsys):
    from mfaranet_ros.model import read_checkpoint

    path = _study(tmp_path)
    assert main(["ablate", "--config", str(path)]) == 0
    out = tmp_path / "out"
    report = json.loads((out / "ablation.json").read_text())
    assert report["complete"] and report["runs_finished"] == 2
    assert report["versions"]["torch"] and report["hardware"]["logical_cpus"]
    assert report["recipe"]["resolved"]["train"]["iterations"] == 2
    rows = {r["name"]: r for r in report["variants"]}
    capsys.readouterr()
    for name, fusion in (("full", "asfm"), ("mean", "mean")):
        row = rows[name]
        (run,) = row["runs"]
        assert read_checkpoint(run["checkpoint"]).metadata.architecture["fusion"] == fusion
        direct = _eval_weights(run["checkpoint"], capsys)
        assert run["miou"] == pytest.approx(direct["miou"], abs=1e-12)
        assert row["parameters"] > 1e6 and row["gflops"] > 0
        assert row["latency"]["median_ms"] > 0 and row["latency"]["calls"] == 2
    assert rows["mean"]["parameters"] < rows["full"]["parameters"]
    assert rows["mean"]["gflops"] < rows["full"]["gflops"]
    table = (out / "ablation.md").read_text()
    assert f"{100 * rows['mean']['miou_mean']:.1f} ±" in table
    assert "resnet18/mfam/ram/mean" in table
    assert (out / "ablation.png").stat().st_size > 1000
    recipe = yaml.safe_load((out / "runs" / "mean" / "seed0" / "recipe.yaml").read_text())
    assert recipe["model"]["architecture"]["fusion"] == "mean"

    # resumable: nothing is trained again, the figures are the same
    checkpoint = Path(rows["full"]["runs"][0]["checkpoint"])
    mtime = os.stat(checkpoint).st_mtime_ns
    assert main(["ablate", "--config", str(path), "--no-latency"]) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert os.stat(checkpoint).st_mtime_ns == mtime
    again = json.loads((out / "ablation.json").read_text())
    assert [r["miou_mean"] for r in again["variants"]] == [
        r["miou_mean"] for r in report["variants"]]

    # another recipe in the same folder is refused, not mixed in
    changed = _study(tmp_path, recipe={**TINY["recipe"], "optim": {"base_lr": 0.5}})
    assert main(["ablate", "--config", str(changed)]) == 2
    assert "trained with another recipe (differs in optim.base_lr)" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_keeps_what_finished(tmp_path, monkeypatch, capsys):
    """Ctrl-C during the second run: the first run's row is reported, the rest is marked."""
    from mfaranet_ros.training import engine

    real_train = engine.train

    def train_then_interrupt(cfg, *args, **kwargs):
        if "mean" in cfg.output_dir:
            raise KeyboardInterrupt   # what Ctrl-C raises in the main thread
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(engine, "train", train_then_interrupt)
    assert main(["ablate", "--config", str(_study(tmp_path))]) == 130
    report = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert not report["complete"] and report["runs_finished"] == 1
    rows = {r["name"]: r for r in report["variants"]}
    assert rows["full"]["runs"] and not rows["mean"]["runs"]
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert "**Incomplete:** 1 of 2 runs finished." in table and "| mean |" in table


@pytest.mark.slow
def test_held_out_val_split_scores_like_the_same_generated_frames(tmp_path, tiny_checkpoint):
    """``evaluate.source: val`` reads the recipe's validation split (Cityscapes' val on a GPU
    study); on generated scenes it must score exactly the frames ``generated`` makes."""
    from mfaranet_ros.training.ablation import evaluate_checkpoint

    recipe = {**TINY["recipe"], "data": {**TINY["recipe"]["data"],
                                         "val": {"frames": 2, "size": [48, 96], "seed": 7}}}
    by_val = load_study(str(_study(tmp_path, recipe=recipe, evaluate={
        "source": "val", "frames": None, "input_size": [48, 96]})))
    by_generator = load_study(str(_study(tmp_path, evaluate={
        "frames": 2, "size": [48, 96], "seed": 7, "input_size": [48, 96]})))
    a = evaluate_checkpoint(str(tiny_checkpoint), by_val)
    b = evaluate_checkpoint(str(tiny_checkpoint), by_generator)
    assert 0 < a["evaluated_pixels"] <= 2 * 48 * 96 and a == b
