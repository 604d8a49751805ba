"""Outlast: a Matrix homeserver that outlives the loss of a datacenter."""

__version__ = "0.1.0"
