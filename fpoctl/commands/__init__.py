"""Typer command groups; `fpoctl.cli` mounts them. Each module stays thin: parse, call, render."""
