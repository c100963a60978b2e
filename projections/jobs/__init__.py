"""The jobs read model: one document per job, rebuilt exactly by replaying the log."""
