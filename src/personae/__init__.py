"""Personae: a self-hosted gateway for AI characters."""

__version__ = "0.1.0"
