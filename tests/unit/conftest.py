"""Fixtures of the core unit tests (helpers live in tests/support.py)."""
import pytest
from support import constant_package, write_raster


@pytest.fixture
def raster_writer():
    return write_raster


@pytest.fixture
def package_factory():
    return constant_package
