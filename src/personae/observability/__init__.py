"""Metrics (Prometheus) and logs (structlog) today; traces and audit come later. See
docs/operations.md."""
