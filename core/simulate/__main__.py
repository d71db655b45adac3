"""`python -m landslide_mapper.core.simulate OUT_DIR`: write a simulated event scene."""
import sys

from .scene import main

sys.exit(main())
