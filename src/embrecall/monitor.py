"""Moved to :mod:`embrecall.service.monitor`; this module re-exports it so existing scripts work."""

from embrecall.service.monitor import LiveRecallMonitor

__all__ = ["LiveRecallMonitor"]
