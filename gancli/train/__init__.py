"""The shared trainer: loop, EMA, checkpoints, schedules, logging."""
