"""Pure engine of Landslide Mapper: numpy, rasterio, torch. Never imports qgis or PyQt."""
