"""Reusable dashboard widgets: plots, metric tables, the runs table, header, events log."""
