"""musepose-operator: Animation custom resources → MusePose video Jobs."""

__version__ = "0.1.0"
