"""Mark a Python plugin as enabled in a QGIS profile's settings (what `qgis_process plugins enable` writes).

Used by `make install-plugin` for profiles not named `default`, which qgis_process (3.22) cannot address:

    /usr/bin/python3 scripts/enable_plugin.py ~/.local/share/QGIS/QGIS3/profiles/work landslide_mapper
"""
from __future__ import annotations

import sys
from pathlib import Path

from qgis.PyQt.QtCore import QSettings


def enable_plugin(profile: Path, plugin: str) -> Path:
    """Set [PythonPlugins] <plugin>=true in <profile>/QGIS/QGIS3.ini and return the ini path."""
    ini = Path(profile) / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(ini), QSettings.IniFormat)
    settings.setValue(f"PythonPlugins/{plugin}", True)
    settings.sync()
    if settings.status() != QSettings.NoError:
        raise OSError(f"could not write {ini}")
    return ini


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{sys.argv[2]} enabled in {enable_plugin(Path(sys.argv[1]), sys.argv[2])}")
