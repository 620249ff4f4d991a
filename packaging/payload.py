"""The single-file layout: ``[bootloader][app folder as tar.gz][trailer][PyInstaller archive of the stub]``.

The PyInstaller bootloader finds its archive from the end of the file (a cookie holds the archive's
length), so bytes placed between the bootloader and the archive cost nothing at start-up. The trailer
right before the archive tells the stub where the app payload lies. Standard library only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PAYLOAD_MAGIC = b"DOCMIND-PAYLOAD1"
TRAILER = struct.Struct("<16sQQQ32s")  # magic, offset, length, unpacked size, build id
PYI_COOKIE_MAGIC = b"MEI\014\013\012\013\016"
PYI_COOKIE = struct.Struct("!8sIIii64s")  # magic, archive length, toc offset, toc length, python, libpython
_COOKIE_SEARCH_BYTES = 1 << 20  # a Windows signature may follow the archive


class PayloadError(Exception):
    """The single file holds no readable app payload (damaged or incomplete download)."""


@dataclass(frozen=True)
class Payload:
    """Where the app folder's tar.gz lies inside the single file, and what it unpacks to."""

    offset: int
    length: int
    unpacked_size: int
    build_id: str


def pyinstaller_archive_start(data_tail: bytes, tail_offset: int) -> int:
    """File offset where the PyInstaller archive starts, from the last bytes of the file."""
    cookie_at = data_tail.rfind(PYI_COOKIE_MAGIC)
    if cookie_at < 0:
        raise PayloadError("this file has no PyInstaller archive: download DocMind again")
    _, archive_length, *_ = PYI_COOKIE.unpack_from(data_tail, cookie_at)
    return tail_offset + cookie_at + PYI_COOKIE.size - archive_length


def read_payload(executable: Path) -> Payload:
    """Locate the app payload in ``executable`` (the single file)."""
    with open(executable, "rb") as file:
        size = file.seek(0, 2)
        tail_offset = max(0, size - _COOKIE_SEARCH_BYTES)
        file.seek(tail_offset)
        archive_start = pyinstaller_archive_start(file.read(), tail_offset)
        if archive_start < TRAILER.size:
            raise PayloadError("this DocMind file is damaged: download it again")
        file.seek(archive_start - TRAILER.size)
        magic, offset, length, unpacked, build_id = TRAILER.unpack(file.read(TRAILER.size))
    if magic != PAYLOAD_MAGIC or offset + length > archive_start:
        raise PayloadError("this DocMind file holds no app: download it again")
    return Payload(offset, length, unpacked, build_id.rstrip(b"\0").decode("ascii"))


def splice(stub: Path, payload_archive: Path, unpacked_size: int, build_id: str, output: Path) -> None:
    """Write ``output`` = the stub's bootloader, the payload, the trailer, then the stub's archive."""
    stub_bytes = stub.read_bytes()
    tail_offset = max(0, len(stub_bytes) - _COOKIE_SEARCH_BYTES)
    archive_start = pyinstaller_archive_start(stub_bytes[tail_offset:], tail_offset)
    length = payload_archive.stat().st_size
    trailer = TRAILER.pack(PAYLOAD_MAGIC, archive_start, length, unpacked_size, build_id.encode("ascii"))
    with open(output, "wb") as out:
        out.write(stub_bytes[:archive_start])
        with open(payload_archive, "rb") as payload:
            while chunk := payload.read(1 << 24):
                out.write(chunk)
        out.write(trailer)
        out.write(stub_bytes[archive_start:])
    output.chmod(0o755)
