"""The delay processor: emits JobDue when a job's `due_at` comes, never early."""
