"""Readers: turn one file into its text sections (one per PDF page or slide), or raise ``UnreadableFileError``.

Every reader takes the file's bytes already read (so a file is read once, for hashing and parsing)
and returns ``Section``s. Heavy parsers are imported only when a file of their type is read.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class UnreadableFileError(Exception):
    """A file that cannot be ingested; the message is the one-line reason shown to the user."""


@dataclass(frozen=True)
class Section:
    """Text of one part of a file: a PDF page, a slide, or the whole file (``page`` is None)."""

    text: str
    page: int | None = None


def read_pdf(data: bytes, path: Path) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("encrypted PDF that needs a password: save an unlocked copy and add that")
        sections = [Section(page.extract_text() or "", number) for number, page in enumerate(reader.pages, start=1)]
    except UnreadableFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        raise UnreadableFileError(f"not a readable PDF (damaged or not really a PDF): {error}") from error
    except Exception as error:  # pypdf raises many types on broken files; none may stop the rest
        if "crypt" in f"{type(error).__name__} {error}".lower() or "password" in str(error).lower():
            raise UnreadableFileError("encrypted PDF that could not be opened: save an unlocked copy") from error
        raise UnreadableFileError(f"not a readable PDF: {type(error).__name__}: {error}") from error
    if not any(section.text.strip() for section in sections):
        raise UnreadableFileError("PDF has no extractable text (scanned images?): run OCR on it first")
    return sections


def read_docx(data: bytes, path: Path) -> list[Section]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as error:
        raise UnreadableFileError(f"not a readable Word .docx file (damaged, or an old .doc?): {error}") from error
    except Exception as error:  # zipfile.BadZipFile and lxml errors on damaged files
        raise UnreadableFileError(f"not a readable Word .docx file: {type(error).__name__}: {error}") from error
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    return [Section("\n".join(lines))]


def read_pptx(data: bytes, path: Path) -> list[Section]:
    from pptx import Presentation

    try:
        presentation = Presentation(io.BytesIO(data))
    except Exception as error:  # python-pptx raises zip, XML and KeyError types on damaged files
        raise UnreadableFileError(f"not a readable PowerPoint .pptx file: {type(error).__name__}: {error}") from error
    sections = []
    for number, slide in enumerate(presentation.slides, start=1):
        lines = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines.append(shape.text_frame.text)
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    lines.append(" | ".join(cell.text.strip() for cell in row.cells))
        if slide.has_notes_slide:
            lines.append(slide.notes_slide.notes_text_frame.text)
        sections.append(Section("\n".join(lines), number))
    return sections


_BOILERPLATE_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form")


def read_html(data: bytes, path: Path) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "lxml")
    for tag in soup(_BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ("navigation", "banner", "contentinfo")}):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    main = soup.find("main") or soup.find("article") or soup.body or soup
    body = main.get_text("\n", strip=True)
    return [Section(f"{title}\n{body}" if title and title not in body else body)]


def read_text(data: bytes, path: Path) -> list[Section]:
    return [Section(decode_text(data))]


def read_csv(data: bytes, path: Path) -> list[Section]:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as error:
        raise UnreadableFileError(f"not a readable CSV file: {error}") from error
    if not rows:
        return [Section("")]
    header, body = rows[0], rows[1:]
    if not body:
        return [Section(", ".join(header))]
    lines = ["; ".join(f"{name}: {value}" for name, value in zip(header, row) if value.strip()) for row in body]
    return [Section("\n".join(lines))]


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


# Short Western European text fits many Latin code pages equally well; charset-normalizer then often
# picks a Baltic or Central European one. Windows-1252 is by far the most common, so it wins close calls.
_LATIN_CODEPAGES = frozenset({
    "cp1250", "cp1254", "cp1257", "cp775", "cp850", "cp858", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4",
    "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_latin2", "mac_roman",
})


def decode_text(data: bytes) -> str:
    """Decode text in any encoding (BOM, UTF-8, else charset-normalizer's guess); refuse binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("binary data, not text (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None or _looks_binary(str(best)):
        raise UnreadableFileError("binary data, not text (no text encoding fits)")
    western = next((match for match in matches if match.encoding == "cp1252"), None)
    if best.encoding in _LATIN_CODEPAGES and western is not None and western.chaos <= best.chaos + 0.2:
        best = western
    log.info("decoded as %s", best.encoding)
    return str(best)


def _looks_binary(text: str) -> bool:
    """True when more than 2% of the characters are control characters other than whitespace."""
    sample = text[:8192]
    controls = sum(1 for char in sample if not char.isprintable() and char not in "\n\r\t\f\v")
    return controls > 0.02 * max(len(sample), 1)


READERS: dict[str, Callable[[bytes, Path], list[Section]]] = {
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".html": read_html,
    ".htm": read_html,
    ".xhtml": read_html,
    ".md": read_text,
    ".markdown": read_text,
    ".rst": read_text,
    ".txt": read_text,
    ".text": read_text,
    ".csv": read_csv,
    ".tsv": read_csv,
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def read_file(data: bytes, path: Path) -> list[Section]:
    """Parse ``data`` (the bytes of ``path``) with the reader for its type; raise ``UnreadableFileError``."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(READERS))
        raise UnreadableFileError(f"unsupported file type {path.suffix or '(none)'!r}; DocMind reads {supported}")
    sections = reader(data, path)
    if not any(section.text.strip() for section in sections):
        raise UnreadableFileError("no text found in the file")
    return sections
