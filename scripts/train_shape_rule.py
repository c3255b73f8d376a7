"""Cross-validate (and train) the shared-color shape rules city by city on real Cityscapes shapes.

Every Cityscapes frame of the sample data with official labelIds (the 2,801 frames of
``cityscapes-train-labelids/<city>/``, train/aachen and val/lindau) is painted with the BDD100K
id-level palette exactly as ``scripts/measure_shape_resolution.py`` does (traffic sign → parking
sign, so real sign shapes share (220, 20, 60) with real people; rectification border / out of roi
→ unlabeled). For the three shared colors (person / parking sign, pole / polegroup, and the black
unlabeled / ego vehicle / static) every 8-connected region is measured once with
:func:`segprep.convert.shape.features.region_features` (shape, position and the groups of colors around
it) together with its true pixel count of each label, and for person / sign and pole / polegroup
also its context thumbnail (:func:`segprep.convert.shape.net.region_thumbnails`). The table is
cached per city (``--cache``, default ``runs/shape_features/``, git-ignored); later runs only
replay rules on it.

Scores, per city (all its frames pooled): balanced pixel accuracy = mean over the labels of the
color of their pixel recall (always answering one label scores 50 % for a pair, 33 % for the
trio), next to the city's *region ceiling* (every region labelled with the label that truly
covers most of it: the best any rule giving one label per region can do).

Protocol (``--test-cities``): lindau and three train cities drawn once with
``random.Random(13).sample(sorted(cities), 3)`` (jena, krefeld, monchengladbach) are kept out of
all tuning and training. Model selection uses leave-one-city-out over the 15 other cities
(aachen included): each city scored by a model trained on the 14 others. The shipped model is
trained on all 15 and scored once on the test cities (the figures of the README and the floors
of ``tests/test_colors.py``).

Forests need scikit-learn (``pip install scikit-learn``; 1.9.1 trained the shipped void forest),
networks PyTorch (a segprep dependency); segprep itself evaluates both with numpy only.

Commands::

    python scripts/train_shape_rule.py extract [-j 1]     # features → cache (slow, once)
    python scripts/train_shape_rule.py report             # rules in segprep today, per city
    python scripts/train_shape_rule.py [--seed N] loco [--models forest-15x6,shipped]
                                                          # candidate models, leave-one-city-out
    python scripts/train_shape_rule.py fit [--model shipped] [--out segprep/convert/shape_model.json]
                                           [--out-net segprep/convert/shape_net.npz]
    python scripts/train_shape_rule.py misses --pair pole/polegroup --cities hamburg,tubingen \
        [--top 8] [--out runs/misses.png]                 # what leave-one-city-out gets wrong
    python scripts/train_shape_rule.py noise --pair pole/polegroup [--model shipped]
                                                          # how much of each gap is frame noise

Model names: ``tree-DEPTH``, ``forest-TREESxDEPTH[-MIN_LEAF_WEIGHT_FRACTION[-MAX_FEATURES]]``,
``hgb-ITERATIONS``, ``net-WIDTHxEPOCHS`` (a :class:`~segprep.convert.shape.net.RegionNet`, see
:func:`fit_net`), each with an optional ``+sqrt`` (sample weights, see :func:`samples`), and
``shipped`` (per color, :data:`SHIPPED`). A forest's result moves with its
seed by up to about a point on a city (one polegroup region can weigh as much as all of a city's
poles), so compare candidates over a few ``--seed`` values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from shape_rule.commands import fit, loco, misses, noise, rulegrid  # noqa: E402
from shape_rule.data import MODEL_SEED, SEED, extract  # noqa: E402
from shape_rule.scores import report  # noqa: E402

from segprep.convert.shape.net import (  # noqa: E402
    SHAPE_NET,
)
from segprep.convert.shape.rules import (  # noqa: E402
    SHAPE_MODEL,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "runs" / "shape_features"))
    ap.add_argument("--seed", type=int, default=SEED, help="random seed of the models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("-j", "--jobs", type=int, default=1)
    e.add_argument("--force", action="store_true")
    sub.add_parser("report")
    lo = sub.add_parser("loco")
    lo.add_argument("--models", default="forest-15x6,shipped")
    lo.add_argument("--pairs", default="")
    sub.add_parser("rulegrid")
    ft = sub.add_parser("fit")
    ft.add_argument("--model", default="shipped")
    ft.add_argument("--out", default=str(ROOT / "segprep" / "convert" / SHAPE_MODEL))
    ft.add_argument("--out-net", default=str(ROOT / "segprep" / "convert" / SHAPE_NET))
    ms = sub.add_parser("misses")
    ms.add_argument("--pair", default="pole/polegroup")
    ms.add_argument("--cities", default="", help="pool cities, comma-separated (default: all)")
    ms.add_argument("--top", type=int, default=6, help="largest missed regions drawn per city")
    ms.add_argument("--out", default=str(ROOT / "runs" / "misses.png"))
    nz = sub.add_parser("noise")
    nz.add_argument("--pair", default="pole/polegroup")
    nz.add_argument("--model", default="shipped")
    nz.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    MODEL_SEED[0] = args.seed
    return {"extract": extract, "report": report, "loco": loco, "fit": fit,
            "rulegrid": rulegrid, "misses": misses, "noise": noise}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

