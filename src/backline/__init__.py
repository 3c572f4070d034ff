"""Backline: the back end and portal of an artist platform."""

__version__ = "0.1.0"
