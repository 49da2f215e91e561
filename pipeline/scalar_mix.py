"""Kept for the import path the README showed before the tasks package: use :mod:`pipeline.tasks.scalar_mix`."""

from pipeline.tasks.scalar_mix import ScalarMix

__all__ = ["ScalarMix"]
