"""Landslide Mapper: a QGIS plugin that maps event-triggered landslides from Sentinel-1/2 change with a local U-Net.

QGIS imports this package and calls `classFactory`; everything heavy (processing provider, torch) is imported
later, when the plugin is initialised or an algorithm runs, so the plugin loads even without PyTorch.
"""


def classFactory(iface):  # noqa: N802 (QGIS plugin entry point name)
    """QGIS plugin entry point: build the plugin object for this QGIS interface."""
    from .plugin.plugin import LandslideMapperPlugin

    return LandslideMapperPlugin(iface)
