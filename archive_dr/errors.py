"""Errors the CLI reports as one clear line (exit 2); neutral so that any layer may raise them."""
from __future__ import annotations


class ArchiveDrError(Exception):
    """A problem with archive-dr's input or state, reported as one clear line."""


class LabError(ArchiveDrError):
    """The lab's input or state (archive-dr lab ...)."""


class InventoryError(ArchiveDrError):
    """The inventory: an unknown host, a source that does not parse, a bad declaration."""
