"""Shared colors resolved by the shape of each region (the labels that share one color in a
palette: BDD100K person / parking sign (220, 20, 60), pole / polegroup (153, 153, 153), the black
void labels; Cityscapes pole / polegroup and its black void labels).

Each 8-connected region of such a color is given one label from its shape, position and
surroundings:

* :mod:`~segprep.convert.shape.features`: what is measured (:func:`region_features`,
  :class:`RegionFeatures`, :data:`NEIGHBOUR_GROUPS`) and what a learned rule reads
  (:func:`model_inputs`, :data:`MODEL_INPUTS`);
* :mod:`~segprep.convert.shape.rules`: the hand-written rules (:data:`HAND_RULES`:
  :class:`PersonSignRule`, :class:`PoleGroupRule`, :class:`VoidRule`) and the learned random
  forests (:class:`ForestRule`, ``segprep/convert/shape_model.json``, :func:`load_shape_model`);
* :mod:`~segprep.convert.shape.net`: a small convolutional network over a thumbnail of the region's
  outline and its inputs (:class:`RegionNet`, ``segprep/convert/shape_net.npz``), and
  :class:`AveragedRule`, a network and a forest voting together;
* :mod:`~segprep.convert.shape.resolve`: which rule applies to a color (:func:`default_rules`,
  :func:`rule_for`) and the label of each region (:func:`classify_regions`), called by
  :func:`segprep.convert.colors.decode_colors`.

By default (:func:`~segprep.convert.shape.resolve.default_rules`) the rule is learned: a small
random forest per color, for person / sign and pole / polegroup averaged with the network, both
shipped in ``segprep/convert/``, evaluated with numpy and trained by ``scripts/train_shape_rule.py``
on the official labelIds of 15 Cityscapes train cities and chosen by leave-one-city-out (its
figures on four cities it never saw are in the README); regions larger than any it was trained on,
and colors it has no rule for, use the hand-written rules.

Data flows one way: :mod:`segprep.convert.colors` imports this package, never the reverse.
"""
