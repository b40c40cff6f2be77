"""musepose-runner: makes one MusePose video from a job contract document."""

__version__ = "0.1.0"
