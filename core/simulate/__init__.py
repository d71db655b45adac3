"""Synthetic landslide event scenes with known truth: DEM, pre/post Sentinel-2 and Sentinel-1, labels and polygons.

Terrain, land cover and textures are seeded analytic fields (sums of plane waves) evaluated at map coordinates, so each
window is computed on its own, the scene is seamless at any size and memory stays bounded. Landslide outlines and cloud
blobs are drawn once, up front, as geometry; every window rasterises only the shapes that touch it, so the raster and
vector truth agree pixel for pixel whatever the block size.
"""
from .fields import FIELD, FOREST, GRASS, ROCK, WATER  # noqa: F401
from .geometry import LANDSLIDES_PER_250K_PX, LENGTH_RANGE_PX, LOOK_AZIMUTH_DEG, MIN_SOURCE_SLOPE_DEG  # noqa: F401
from .render import INCIDENCE_DEG, LOOKS, S1_BANDS, S2_BANDS, SUN  # noqa: F401
from .scene import SIMULATED_EVENT, SimulatedEvent, main, simulate_event  # noqa: F401
from .geology import GEOLOGY_CLASSES, GeologyScene, simulate_geology  # noqa: F401
