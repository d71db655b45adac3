"""Moved to common/errors.py (transitional re-export while the restructure lands)."""
from ..common.errors import *  # noqa: F401,F403
