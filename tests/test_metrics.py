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
