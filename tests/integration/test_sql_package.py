"""The SQL repository package keeps one public surface, whatever its modules."""

from __future__ import annotations

import importlib
import types

import helppet_recordings.repositories.sqlalchemy as package

# Every public name ``helppet_recordings.repositories.sqlalchemy`` offered when it was one module.
EARLIER_PUBLIC_NAMES = {
    "ALEMBIC_VERSION_TABLE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SQLITE_BUSY_TIMEOUT",
    "LIVE_PREDICATE",
    "MIGRATIONS_DIR",
    "PURGEABLE_PREDICATE",
    "RECORDINGS_TABLE_NAME",
    "STALE_UPLOAD_PREDICATE",
    "ForeignKeyTarget",
    "SqlAlchemyRepository",
    "alembic_config",
    "define_recordings_table",
    "metadata",
    "recordings",
    "translate_errors",
}


def test_every_earlier_public_name_is_still_exported() -> None:
    """Code written against the single module imports the same names from the package."""
    assert set(package.__all__) >= EARLIER_PUBLIC_NAMES
    for name in EARLIER_PUBLIC_NAMES:
        assert getattr(package, name) is not None


def test_all_is_complete() -> None:
    """``__all__`` lists every public object the package holds (ruff checks its order)."""
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__ import annotations
    }
    assert sorted(package.__all__) == sorted(public)


def test_exported_objects_come_from_the_package_modules() -> None:
    """Each exported object is the one its module defines, so there is one of each."""
    for name in package.__all__:
        value = getattr(package, name)
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith(package.__name__ + "."):
            assert getattr(importlib.import_module(home), name) is value
