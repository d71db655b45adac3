"""Model architectures, losses and the `.lmpkg` model package format of Landslide Mapper (no QGIS imports)."""
