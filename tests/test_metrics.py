"""The shared confusion-matrix metric: numpy and torch paths agree with a direct count."""

import numpy as np
import pytest

from segprep.metrics import ConfusionMatrix, class_iou, confusion_matrix, scores


def _direct(gt, pred, k, ignore):
    cm = np.zeros((k, k + 1), np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g == ignore or not 0 <= g < k:
            continue
        cm[g, p if 0 <= p < k else k] += 1
    return cm


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_confusion_matrix_matches_direct_count(dtype):
    rng = np.random.default_rng(0)
    gt = rng.choice([0, 1, 2, 3, 255], size=(37, 41)).astype(dtype)
    pred = rng.choice([0, 1, 2, 3, 4, 255], size=(37, 41)).astype(dtype)
    cm = confusion_matrix(gt, pred, 4)
    assert cm.shape == (4, 5)
    np.testing.assert_array_equal(cm, _direct(gt, pred, 4, 255))


def test_torch_path_equals_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, size=(2, 9, 13))
    gt[0, 0, :5] = 255
    pred = rng.integers(0, 7, size=(2, 9, 13))
    acc = ConfusionMatrix(6)
    acc.update(torch.from_numpy(gt), torch.from_numpy(pred))
    np.testing.assert_array_equal(acc.matrix, confusion_matrix(gt, pred, 6))


def test_scores_by_hand():
    # 3 classes; class 2 absent from GT and never predicted -> NaN, skipped
    cm = np.array([[3, 1, 0, 0],
                   [0, 4, 0, 2],
                   [0, 0, 0, 0]])
    iou = class_iou(cm)
    assert iou[0] == pytest.approx(3 / 4) and iou[1] == pytest.approx(4 / 7)
    assert np.isnan(iou[2])
    s = scores(cm)
    assert s.miou == pytest.approx((3 / 4 + 4 / 7) / 2)
    assert s.pixel_accuracy == pytest.approx(7 / 10)
    assert s.mean_accuracy == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert s.fw_iou == pytest.approx(0.4 * 3 / 4 + 0.6 * 4 / 7)
    # predicted but absent from GT: IoU 0, counted by "valid", not by "present"
    cm2 = np.array([[3, 1], [0, 0]])
    assert scores(cm2).miou == pytest.approx(3 / 8)
    assert scores(cm2, mean_over="present").miou == pytest.approx(3 / 4)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 3)


# ----------------------------------------------------------------------------- additions
def test_recall_precision_by_hand():
    from segprep.metrics import class_precision, class_recall

    cm = np.array([[3, 1, 0, 0],
                   [0, 4, 0, 2],
                   [0, 0, 0, 0]])
    np.testing.assert_allclose(class_recall(cm)[:2], [3 / 4, 4 / 6])
    np.testing.assert_allclose(class_precision(cm)[:2], [3 / 3, 4 / 5])
    assert np.isnan(class_recall(cm)[2]) and np.isnan(class_precision(cm)[2])


def test_bdd100k_scores_follow_the_toolkit():
    from segprep.metrics import bdd100k_scores

    # the toolkit's own case: gt a.png vs pred a.png, hist [[93, 1], [4, 2]] over 19 classes
    cm = np.zeros((19, 20), np.int64)
    cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1] = 93, 1, 4, 2
    r = bdd100k_scores(cm, [f"c{i}" for i in range(19)])
    assert r["IoU"]["c0"] == pytest.approx(100 * 93 / 98)
    assert r["Acc"]["c0"] == pytest.approx(100 * 93 / 97)  # precision: the column sum
    assert r["IoU"]["c5"] == 0.0  # undefined -> 0, as the toolkit
    assert r["mIoU"] == 61.73469387755102 and r["pAcc"] == 95.0
    # a missing prediction: its pixels are misses (the last column)
    cm[0, 19] += 94
    cm[1, 19] += 6
    r = bdd100k_scores(cm, [f"c{i}" for i in range(19)])
    assert r["mIoU"] == 31.911057692307693 and r["pAcc"] == 47.5
    assert r["mAcc"] == 81.27147766323024


def test_cityscapes_protocol_tables():
    from segprep import class_maps
    from segprep.metrics import CityscapesProtocol, InstanceStats, nan_mean

    p = CityscapesProtocol(class_maps.load("cityscapes"))
    assert p.size == 34 and p.eval_ids == list(range(34))
    assert len(p.not_ignored) == 19
    assert p.inst_classes == ["person", "rider", "car", "truck", "bus", "train", "motorcycle",
                              "bicycle"]
    assert p.inst_categories == {"human": [24, 25], "vehicle": list(range(26, 34))}
    # one car instance of 100 px, 60 predicted car, 80 predicted a vehicle
    s = InstanceStats(p)
    s.add(26, 100, 60, 80)
    s.add(29, 50, 0, 0)  # caravan: ignored in evaluation, skipped
    w = p.avg_size["car"] / 100
    assert s.classes["car"]["tpWeighted"] == pytest.approx(60 * w)
    assert s.categories["vehicle"]["fnWeighted"] == pytest.approx(20 * w)
    with pytest.raises(ValueError, match="has no instances"):
        s.add(7, 10, 1, 1)
    assert np.isnan(nan_mean([float("nan")])) and nan_mean([1.0, float("nan"), 3.0]) == 2.0
