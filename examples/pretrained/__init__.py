"""Pretrained VAEs: evaluate one with no training, or export a trained run
(``python -m examples.pretrained``); the library functions are in
:mod:`examples.pretrained.run`."""
