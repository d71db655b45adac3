"""Moved to common/outputs.py (transitional re-export while the restructure lands)."""
from ..common.outputs import *  # noqa: F401,F403
