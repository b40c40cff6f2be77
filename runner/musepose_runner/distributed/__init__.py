"""Several workers on one video: planning, meeting, liveness, launch."""
