"""The Windows version resource (file properties) of DocMind.exe, written from ``docmind.__version__``."""

from __future__ import annotations

from pathlib import Path

_TEMPLATE = """VSVersionInfo(
  ffi=FixedFileInfo(filevers={tuple4}, prodvers={tuple4}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'DocMind'),
      StringStruct('FileDescription', 'DocMind - chat with your documents, offline'),
      StringStruct('FileVersion', '{version}'),
      StringStruct('InternalName', 'DocMind'),
      StringStruct('OriginalFilename', 'DocMind.exe'),
      StringStruct('ProductName', 'DocMind'),
      StringStruct('ProductVersion', '{version}')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def write_windows_version_file(path: Path, version: str) -> str:
    """Write PyInstaller's version-resource file for ``version`` (e.g. "0.1.0") and return its path."""
    numbers = [int(part) for part in version.split(".")[:4] if part.isdigit()]
    tuple4 = tuple(numbers + [0] * (4 - len(numbers)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_TEMPLATE.format(tuple4=tuple4, version=version), encoding="utf-8")
    return str(path)
