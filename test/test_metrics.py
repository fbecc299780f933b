"""Metrics: hand-checked cases, and equality with cityscapesscripts' own evaluation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mfaranet_ros.evaluation.metrics import ConfusionMatrix, LatencyStats, iou_from_matrix


def test_confusion_matrix_small_case_by_hand():
    # gt:   0 0 1 1 255      pred: 0 1 1 1 2
    gt = np.array([[0, 0, 1, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1, 2]], np.uint8)
    cm = ConfusionMatrix(3)
    frame = cm.update(pred, gt)
    # The ignored pixel counts nowhere; rows are ground truth.
    np.testing.assert_array_equal(frame, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 2)      # tp 1, fn 1, fp 0
    assert iou[1] == pytest.approx(2 / 3)      # tp 2, fn 0, fp 1
    assert math.isnan(iou[2])                  # absent from gt; predicted only on ignore
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.pixel_accuracy() == pytest.approx(3 / 4)
    # A second frame accumulates.
    cm.update(np.array([[2, 2]], np.uint8), np.array([[2, 0]], np.uint8))
    assert cm.matrix.sum() == 6
    assert cm.iou()[2] == pytest.approx(1 / 2)


def test_class_predicted_but_absent_counts_as_zero():
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 2]], np.uint8), np.array([[0, 0]], np.uint8))
    iou = cm.iou()
    assert iou[0] == pytest.approx(0.5) and iou[2] == 0.0 and math.isnan(iou[1])
    assert cm.miou() == pytest.approx(0.25)


def test_errors_are_specific():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="differ in size"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"ground truth holds values \[7\]"):
        cm.update(np.zeros((1, 2), np.uint8), np.array([[0, 7]], np.uint8))
    with pytest.raises(ValueError, match=r"prediction holds values \[5\]"):
        cm.update(np.array([[5, 0]], np.uint8), np.zeros((1, 2), np.uint8))


def test_summary_is_json_safe():
    import json

    cm = ConfusionMatrix(2)
    cm.update(np.array([[0]], np.uint8), np.array([[0]], np.uint8))
    summary = cm.summary(["a", "b"])
    assert summary["per_class"]["b"]["iou"] is None
    json.dumps(summary, allow_nan=False)


def test_latency_percentiles():
    stats = LatencyStats()
    for v in range(1, 101):
        stats.add("total", float(v))
    s = stats.summary()["total"]
    assert s["count"] == 100 and s["min"] == 1 and s["max"] == 100
    assert s["p50"] == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert s["p99"] == pytest.approx(np.percentile(np.arange(1, 101), 99))


def _cityscapes_eval(tmp_path, predictions, ground_truths):
    """Runs cityscapesscripts' pixel-level evaluation on trainId arrays (as labelId PNGs)."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as csev
    from cityscapesscripts.helpers.labels import labels
    from PIL import Image

    train_to_id = np.zeros(256, np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255:
            train_to_id[label.trainId] = label.id
    # Ground-truth pixels that are ignored are spread over several ignored labelIds
    # (unlabeled 0, ego vehicle 1, static 4, guard rail 14), as in real Cityscapes files.
    ignored_ids = np.array([0, 1, 4, 14], np.uint8)
    pred_files, gt_files = [], []
    rng = np.random.default_rng(1)
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths)):
        gt_ids = train_to_id[gt]
        ignore = gt == 255
        gt_ids[ignore] = rng.choice(ignored_ids, size=int(ignore.sum()))
        gt_file = tmp_path / f"city_{i:06d}_000019_gtFine_labelIds.png"
        pred_file = tmp_path / f"city_{i:06d}_000019_pred.png"
        Image.fromarray(gt_ids).save(gt_file)
        Image.fromarray(train_to_id[pred]).save(pred_file)
        gt_files.append(str(gt_file))
        pred_files.append(str(pred_file))
    args = csev.args
    args.evalInstLevelScore = False   # needs instanceIds files; not part of IoU
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    return csev.evaluateImgLists(pred_files, gt_files, args)


def _id_to_train():
    from cityscapesscripts.helpers.labels import labels

    return {label.name: label.trainId for label in labels if 0 <= label.trainId < 255}


def assert_matches_cityscapes(cm: ConfusionMatrix, class_names, result) -> None:
    ours = cm.iou()
    name_to_train = _id_to_train()
    assert set(name_to_train) == set(class_names)
    checked = 0
    for name, train_id in name_to_train.items():
        theirs = result["classScores"][name]
        if math.isnan(theirs):
            assert math.isnan(ours[train_id]), name
        else:
            assert ours[train_id] == pytest.approx(theirs, abs=1e-12), name
            checked += 1
    assert checked >= 5, "too few classes present to make the comparison meaningful"
    assert cm.miou() == pytest.approx(result["averageScoreClasses"], abs=1e-12)
    # The confusion matrices agree too, once labelIds are mapped back to trainIds.
    from cityscapesscripts.helpers.labels import labels

    theirs_cm = np.asarray(result["confMatrix"], np.int64)
    ids = {label.trainId: label.id for label in labels if 0 <= label.trainId < 255}
    idx = [ids[t] for t in range(len(class_names))]
    np.testing.assert_array_equal(cm.matrix, theirs_cm[np.ix_(idx, idx)])


def test_equals_cityscapesscripts_evaluation(tmp_path):
    from mfaranet_ros.model import CITYSCAPES_CLASSES

    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(3):
        gt = rng.integers(0, 19, size=(24, 40)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.1] = 255
        gt[:, :4] = 13                      # a frequent class
        pred = gt.copy()
        noise = rng.random(gt.shape) < 0.35
        pred[noise] = rng.integers(0, 19, size=int(noise.sum()))
        pred[pred == 255] = 0
        pred[:2, :] = 18                    # a class predicted where it is not
        preds.append(pred)
        gts.append(gt)
    gts[0][gts[0] == 16] = 0                # 'train' absent from every ground truth ...
    gts[1][gts[1] == 16] = 0
    gts[2][gts[2] == 16] = 0
    for p in preds:
        p[p == 16] = 0                      # ... and never predicted: NaN on both sides
    cm = ConfusionMatrix(19)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    result = _cityscapes_eval(tmp_path, preds, gts)
    assert math.isnan(result["classScores"]["train"])
    assert_matches_cityscapes(cm, CITYSCAPES_CLASSES, result)


def test_iou_from_matrix_matches_class_method():
    m = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    cm = ConfusionMatrix(3)
    cm.matrix[:] = m
    np.testing.assert_array_equal(iou_from_matrix(m), cm.iou())


def test_training_validation_uses_the_same_metric():
    """Training's validation mIoU is the evaluation's: a class predicted but absent from
    the ground truth counts (IoU 0), one absent from both does not."""
    from mfaranet_ros.training.metrics import confusion_matrix, iou_from_confusion

    rng = np.random.default_rng(3)
    conf = np.zeros((5, 5), np.int64)
    cm = ConfusionMatrix(5)
    for _ in range(3):
        gt = rng.integers(0, 3, (6, 9)).astype(np.uint8)       # classes 3 and 4 never true
        gt[0, :2] = 255
        pred = rng.integers(0, 4, (6, 9)).astype(np.uint8)     # class 3 predicted
        conf += confusion_matrix(pred, gt, 5)
        cm.update(pred, gt)
    np.testing.assert_array_equal(conf, cm.matrix)
    miou, iou, counted = iou_from_confusion(conf)
    assert miou == pytest.approx(cm.miou(), abs=1e-15)
    np.testing.assert_array_equal(iou, cm.iou())
    assert counted.tolist() == [True, True, True, True, False] and iou[3] == 0.0


def test_one_summary_of_times_serves_every_report():
    """The node's window, eval-bag's stages and the benchmarks all summarize through one
    function: the same numbers where their percentiles overlap."""
    from mfaranet_ros.bench.stats import summarize
    from mfaranet_ros.ros.stats import StageStats
    from mfaranet_ros.timing import summarize_times

    times = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0]
    t = summarize_times(times)
    assert t["count"] == 7 and t["min"] == 1.0 and t["max"] == 10.0
    assert t["p50"] == 4.0 and t["p90"] == pytest.approx(np.percentile(times, 90))
    bench = summarize(times, frames_per_sample=1)
    assert (bench.median_ms, bench.p99_ms, bench.fps) == (4.0, t["p99"], 250.0)
    stats = LatencyStats()
    for v in times:
        stats.add("total", v)
    assert stats.summary()["total"]["p90"] == t["p90"]
    window = StageStats()
    for v in times:
        window.add({"inference": v})
    assert window.summary()["inference"] == (4.0, t["p95"], 10.0)
    with pytest.raises(ValueError, match="no samples"):
        summarize_times([])
