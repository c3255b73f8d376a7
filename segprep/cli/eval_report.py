"""Presentation of evaluation reports for the CLI: tables, the summary line, the confusion plot
and the ``--json`` document."""

from __future__ import annotations

import json
import os

import numpy as np

from segprep.evaluation.panoptic import PanopticReport
from segprep.evaluation.report import EvalReport

PathLike = str | os.PathLike


def class_table(report: EvalReport) -> tuple[list[str], list[list]]:
    """Per-class table of an evaluation: ``(headers, rows)``, scores in percent (NaN: undefined).
    Cityscapes: IoU and iIoU of the 19 evaluated classes; BDD100K: IoU and Acc (precision);
    odgt: IoU and accuracy (recall)."""
    r = report.result or {}
    if report.protocol == "cityscapes":
        return (["class", "IoU %", "iIoU %"],
                [[n, r["classScores"][n] * 100, r["classInstScores"][n] * 100]
                 for n in report.class_names])
    if report.protocol == "bdd100k":
        return (["class", "IoU %", "Acc % (precision)"],
                [[n, r["IoU"][n], r["Acc"][n]] for n in report.class_names])
    return (["class", "IoU %", "Acc %"],
            [[n, _pct(r["classIoU"][n]), _pct(r["classAccuracy"][n])] for n in report.class_names])


def category_table(report: EvalReport) -> tuple[list[str], list[list]]:
    """Per-category table (Cityscapes; categories with a defined IoU), percent."""
    r = report.result or {}
    cats = [c for c in r.get("categoryScores", {}) if not np.isnan(r["categoryScores"][c])]
    return (["category", "IoU %", "iIoU %"],
            [[c, r["categoryScores"][c] * 100, r["categoryInstScores"][c] * 100] for c in cats])


def format_table(table: tuple[list[str], list[list]]) -> str:
    """Plain-text rendering of a :func:`class_table` (numbers with 2 decimals, NaN as ``-``)."""
    headers, rows = table
    cells = [[str(v) if isinstance(v, str) else ("-" if v is None or not np.isfinite(v)
                                                   else f"{v:.2f}") for v in row] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def _pct(x: float | None) -> float:
    return float("nan") if x is None else x * 100


def summary_line(report: EvalReport) -> str:
    """One line: the headline numbers, frames, seconds and the cache use."""
    r = report.result or {}
    if report.protocol == "cityscapes":
        head = (f"IoU classes {r['averageScoreClasses'] * 100:.2f}, iIoU classes "
                f"{r['averageScoreInstClasses'] * 100:.2f}, IoU categories "
                f"{r['averageScoreCategories'] * 100:.2f}, iIoU categories "
                f"{r['averageScoreInstCategories'] * 100:.2f}")
    elif report.protocol == "bdd100k":
        head = (f"mIoU {r['mIoU']:.2f}, mAcc {r['mAcc']:.2f}, fIoU {r['fIoU']:.2f}, "
                f"pAcc {r['pAcc']:.2f}")
    else:
        head = (f"mIoU {_pct(r.get('mIoU')):.2f}, pixel acc {_pct(r.get('pixelAccuracy')):.2f}, "
                f"mean acc {_pct(r.get('meanAccuracy')):.2f}, fwIoU {_pct(r.get('fwIoU')):.2f}")
    c = report.cache
    cache = (f"; ground-truth cache {c['hits']} hit(s), {c['misses']} miss(es)"
             if c.get("folder") else "; no ground-truth cache")
    return (f"{report.protocol}: {head} (%) — {report.frames} frames in {report.seconds:.2f} s"
            f"{cache}")


def plot_confusion(report: EvalReport, path: PathLike) -> None:
    """Write the row-normalised confusion matrix of the evaluated classes as a PNG (matplotlib
    Agg). Rows: ground truth; columns: prediction (plus "other" for every prediction that is not
    an evaluated class); each row divided by its ground-truth pixel count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segprep.io import atomic_write_bytes

    cm = np.asarray(report.confusion, np.float64)
    ids = report.eval_ids
    sub = cm[np.ix_(ids, ids)]
    other = cm[ids].sum(1) - sub.sum(1)
    mat = np.concatenate([sub, other[:, None]], axis=1)
    rows = mat.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(rows > 0, mat / np.where(rows > 0, rows, 1), np.nan)
    names = list(report.class_names)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * n + 2), max(5, 0.42 * n + 1.5)), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(n + 1), names + ["other"], rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{report.protocol}: confusion matrix (rows normalised), {report.frames} frames",
                 fontsize=9)
    if n <= 25:
        for i in range(n):
            for j in range(n + 1):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.01:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if v > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def json_text(report: EvalReport) -> str:
    """The JSON document written by ``--json``: the protocol's result dict (cityscapesScripts'
    layout for Cityscapes, sorted keys and indent 4 as its ``writeDict2JSON``; NaN written as
    ``NaN`` like it) plus a ``segprep`` entry (frames, seconds, protocol, cache use)."""
    doc = dict(report.result or {})
    doc["segprep"] = {"protocol": report.protocol, "frames": report.frames,
                      "seconds": round(report.seconds, 4), "cache": report.cache}
    if report.protocol != "cityscapes" and report.confusion is not None:
        doc["confMatrix"] = np.asarray(report.confusion).tolist()
    return json.dumps(doc, sort_keys=True, indent=4) + "\n"


def panoptic_class_table(report: PanopticReport) -> tuple[list[str], list[list]]:
    """Per-class table ``(headers, rows)``: category, id, thing/stuff, PQ/SQ/RQ in percent and
    the TP/FP/FN counts, by increasing category id (as the reference prints)."""
    r = report.results or {}
    rows = []
    for cid in sorted(report.categories):
        c = report.categories[cid]
        pc = r.get("per_class", {}).get(cid, {})
        tp, fp, fn, _iou = report.stats.get(cid, (0, 0, 0, 0.0))
        rows.append([str(c.get("name", cid)), str(cid), "thing" if c["isthing"] == 1 else "stuff",
                     100 * pc.get("pq", float("nan")), 100 * pc.get("sq", float("nan")),
                     100 * pc.get("rq", float("nan")), str(tp), str(fp), str(fn)])
    return ["class", "id", "kind", "PQ %", "SQ %", "RQ %", "TP", "FP", "FN"], rows


def panoptic_summary_table(report: PanopticReport) -> tuple[list[str], list[list]]:
    """``All`` / ``Things`` / ``Stuff``: PQ, SQ, RQ in percent and N (classes averaged)."""
    r = report.results or {}
    return (["", "PQ %", "SQ %", "RQ %", "N"],
            [[name, 100 * r[name]["pq"], 100 * r[name]["sq"], 100 * r[name]["rq"],
              str(r[name]["n"])] for name in ("All", "Things", "Stuff") if name in r])


def panoptic_json_text(report: PanopticReport) -> str:
    """The ``--json`` document: cityscapesScripts' result dict (``All``, ``Things``, ``Stuff``,
    ``per_class``; sorted keys, indent 4, as its ``json.dump``) plus a ``segprep`` entry
    (protocol, frames, seconds, and the per-class ``tp``/``fp``/``fn``/``iou`` sums)."""
    doc = dict(report.results or {})
    doc["segprep"] = {"protocol": "cityscapes-panoptic", "frames": report.frames,
                      "seconds": round(report.seconds, 4),
                      "counts": {cid: {"tp": s[0], "fp": s[1], "fn": s[2], "iou": s[3]}
                                 for cid, s in sorted(report.stats.items())}}
    return json.dumps(doc, sort_keys=True, indent=4) + "\n"
