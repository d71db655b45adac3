"""The QGIS GUI shell of Landslide Mapper: menu, toolbar, and registration of the Processing provider."""
