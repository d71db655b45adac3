"""Dock widgets, dialogs, layer styles (styles/*.qml) and icons of Landslide Mapper; no engine code lives here."""
