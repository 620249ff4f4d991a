"""Helpers shared by the storage tests that use real processes."""

from __future__ import annotations

from pathlib import Path

from docmind.storage import Database

REPO = Path(__file__).resolve().parents[2]

# Prepended to a child's script: root ignores file modes, a child that drops its capabilities
# (CAP_DAC_OVERRIDE among them) does not.
AS_UNPRIVILEGED = """
import ctypes, os
if os.geteuid() == 0:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
"""


def integrity(db_path: Path) -> tuple[str, str]:
    """``PRAGMA integrity_check`` and the FTS5 index's own check (raises if it fails), on a fresh connection."""
    db = Database(db_path)
    try:
        pragma = db.read("PRAGMA integrity_check")[0][0]
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        return pragma, "ok"
    finally:
        db.close()
