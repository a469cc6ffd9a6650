"""Closed-loop evaluation pieces; policy/evaluate.py is the entry point."""
