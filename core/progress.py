"""Moved to common/progress.py (transitional re-export while the restructure lands)."""
from ..common.progress import *  # noqa: F401,F403
