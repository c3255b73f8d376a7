"""Shared colors resolved region by region: which rule applies to a color (:func:`rule_for`,
:func:`default_rules`) and the label it gives each 8-connected region (:func:`classify_regions`).
:func:`segprep.convert.colors.decode_colors` calls these for every shared color of a frame.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from segprep.class_maps import ClassMap
from segprep.convert.shape.features import RegionFeatures, neighbour_groups, region_features
from segprep.convert.shape.rules import HAND_RULES, load_shape_model


@functools.lru_cache(maxsize=1)
def default_rules() -> tuple:
    """The shared-color rules :func:`segprep.convert.colors.decode_colors` uses by default: the
    learned rules of the shipped files (:func:`segprep.convert.shape.net.combined_rules`: person /
    sign and pole / polegroup average their network of :data:`segprep.convert.shape.net.SHAPE_NET`
    with their forest of :data:`~segprep.convert.shape.rules.SHAPE_MODEL`; void is a forest), then
    :data:`~segprep.convert.shape.rules.HAND_RULES` for any color the models do not cover. A rule
    applies to a shared color when all its ``labels`` are among the labels of that color (the
    first such rule wins)."""
    from segprep.convert.shape.net import combined_rules, load_shape_net

    return tuple(combined_rules(load_shape_net(), load_shape_model()).values()) + HAND_RULES


def rule_for(names: tuple[str, ...], rules: tuple | None = None):
    """The first rule of ``rules`` (default :func:`default_rules`) whose labels all share this
    color, or None."""
    for rule in default_rules() if rules is None else rules:
        if set(rule.labels) <= set(names):
            return rule
    return None


def classify_regions(rule: Any, color_mask: np.ndarray, values: np.ndarray,
                     class_map: str | ClassMap) -> tuple[np.ndarray, RegionFeatures, np.ndarray]:
    """Label the 8-connected regions of one shared color and give each one of ``rule.labels``.

    Args:
        rule: a shared-color rule (:data:`~segprep.convert.shape.rules.HAND_RULES`,
            :class:`~segprep.convert.shape.rules.ForestRule`,
            :class:`segprep.convert.shape.net.RegionNet` or
            :class:`segprep.convert.shape.net.AveragedRule`); its ``contours``, ``neighbours``
            and ``thumbnails`` attributes say what it reads.
        color_mask: ``(H, W)`` bool, the pixels of the color.
        values: ``(H, W)`` uint8 label ids of the frame (those of the shared color may be any of
            its labels: neighbour groups are per color).
        class_map: the class map of ``values`` (for :func:`neighbour_groups`).

    Returns:
        ``(labels, features, choice)``: the :func:`region_features` labels and features and
        ``(N,)`` int64 index into ``rule.labels`` of each region.
    """
    contours = getattr(rule, "contours", True)
    groups = neighbour_groups(class_map)
    if getattr(rule, "neighbours", False):
        labels, feats = region_features(color_mask, contours=contours, values=values,
                                        value_groups=groups)
    else:
        labels, feats = region_features(color_mask, contours=contours)
    if getattr(rule, "thumbnails", False):
        from segprep.convert.shape.net import region_thumbnails

        thumbs = region_thumbnails(labels, feats, values, color_mask, groups,
                                   channels=rule.channels)
        return labels, feats, rule.classify(feats, thumbs, rule.channels)
    return labels, feats, rule.classify(feats)
