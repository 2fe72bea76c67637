"""Training inputs: from a dataset spec to the arrays a model trains on.

:mod:`~saca_lab.datasets.resolve` turns a dataset spec (a folder, a preset name or a preset
mapping) into a stored :class:`~saca_lab.data.store.Dataset`, generating and caching presets.
:mod:`~saca_lab.datasets.features` builds the model inputs (an sklearn Pipeline of the
package's transformers), :mod:`~saca_lab.datasets.splits` the splits by sample,
:mod:`~saca_lab.datasets.augment` the training-time augmentation and
:mod:`~saca_lab.datasets.datamodules` the Lightning data module.
"""
