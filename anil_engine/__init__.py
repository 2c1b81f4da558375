"""ANIL Studio engine: few-shot classification with ANIL, without any Qt.

The engine is a plain library: data sets and task sampling, the CNN4 trunk and
linear head, ANIL meta-training, head-only adaptation, evaluation, checkpoints
and the command line. The desktop app in ``app/`` drives it; so can any script.
"""

from __future__ import annotations

__version__ = "0.1.0"
