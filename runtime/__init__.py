"""Shared runtime plumbing: settings, log and store clients, offset tracking, structured logs."""
