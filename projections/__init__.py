"""Read models projected from the log."""
