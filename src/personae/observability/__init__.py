"""Logs today; metrics, traces and audit come with the operations issue."""
