"""The ground floor that core/ and models/ both stand on: typed errors, the progress protocol, outputs that never
cost the user data, and version facts. It imports nothing of the plugin, nor QGIS or torch."""
