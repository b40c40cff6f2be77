"""One run, start to finish, as numbered stages; its errors, progress and resume."""
