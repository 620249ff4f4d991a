"""Readers: turn one file into its text sections (one per PDF page or slide), or raise ``UnreadableFileError``.

Every reader takes the file's bytes already read (so a file is read once, for hashing and parsing)
and returns ``Section``s. Heavy parsers are imported only when a file of their type is read.
PDFs and images are opened as a ``PagedFile`` whose pages are read one at a time, so a 1,000-page
PDF is never held as text all at once; pages without a text layer and images are read by OCR.
Readers that know a file's structure also give its title and where each heading starts, so that
chunks can carry the path of headings above them (see ``pipeline.chunk_files``).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class UnreadableFileError(Exception):
    """A file that cannot be ingested; the message is the one-line reason shown to the user."""


@dataclass(frozen=True)
class Heading:
    """A heading that starts at character ``offset`` of its section's text; ``level`` 1 is the outermost."""

    offset: int
    level: int
    text: str


@dataclass(frozen=True)
class Section:
    """Text of one part of a file: a PDF page, a slide, or the whole file (``page`` is None).

    ``title`` is the file's title where it has one; ``headings`` are those starting in this section.
    """

    text: str
    page: int | None = None
    title: str = ""
    headings: tuple[Heading, ...] = ()
    error: str | None = None
    """Why this page could not be read (its text is then empty); the rest of the file is still ingested."""


@dataclass
class PagedFile:
    """A file opened for reading: its sections come one at a time from ``sections``.

    ``pages`` is how many sections there will be; ``title`` is the file's title as chunk contexts
    start with it (its own title, else its name when it has headings, else empty).
    """

    pages: int
    title: str
    sections: Iterator[Section]


MIN_PAGE_CHARACTERS = 16
"""A PDF page with fewer characters of text than this is taken as scanned and read by OCR."""


def read_pdf(data: bytes, path: Path, ocr: bool = True) -> PagedFile:
    from pypdf import PdfReader

    with _pdf_errors():
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("encrypted PDF that needs a password: save an unlocked copy and add that")
        count = len(reader.pages)
        outline = _pdf_outline(reader)
        title = _pdf_title(reader)
    return PagedFile(count, title or (path.name if outline else ""), _pdf_pages(reader, data, count, title, outline, ocr))


def _pdf_pages(reader, data: bytes, count: int, title: str, outline: dict, ocr: bool) -> Iterator[Section]:
    """Each page's text layer, or its OCR'd text when it has (almost) none; a page that fails carries its error."""
    from docmind.cache.ocr import OcrError, PdfRenderer

    renderer = PdfRenderer(data)
    found_text = False
    try:
        for number in range(1, count + 1):
            try:
                with _pdf_errors():
                    text = reader.pages[number - 1].extract_text() or ""
            except UnreadableFileError as error:
                yield Section("", number, title, error=str(error))
                continue
            if ocr and len(text.strip()) < MIN_PAGE_CHARACTERS:
                try:
                    text = renderer.page_text(number)
                except OcrError as error:
                    yield Section("", number, title, error=str(error))
                    continue
            found_text = found_text or bool(text.strip())
            yield Section(text, number, title, _placed(text, outline.get(number, [])))
    finally:
        renderer.close()
    if not found_text and not ocr:
        raise UnreadableFileError("PDF has no extractable text (scanned images?) and OCR is switched off "
                                  "(set DOCMIND_OCR=true to read it)")


@contextmanager
def _pdf_errors() -> Iterator[None]:
    """Turn pypdf's many exception types on damaged or encrypted files into ``UnreadableFileError``."""
    from pypdf.errors import PdfReadError

    try:
        yield
    except UnreadableFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        raise UnreadableFileError(f"not a readable PDF (damaged or not really a PDF): {error}") from error
    except Exception as error:  # pypdf raises many types on broken files; none may stop the rest
        if "crypt" in f"{type(error).__name__} {error}".lower() or "password" in str(error).lower():
            raise UnreadableFileError("encrypted PDF that could not be opened: save an unlocked copy") from error
        raise UnreadableFileError(f"not a readable PDF: {type(error).__name__}: {error}") from error


def read_image(data: bytes, path: Path, ocr: bool = True) -> PagedFile:
    """An image file (PNG, JPEG, TIFF with one page per frame, WebP), read by OCR."""
    if not ocr:
        raise UnreadableFileError("images are read by OCR, which is switched off (set DOCMIND_OCR=true to read it)")
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnreadableFileError(f"not a readable image (damaged or not really a {path.suffix} file)") from error
    return PagedFile(frames, "", _image_pages(image, frames))


def _image_pages(image, frames: int) -> Iterator[Section]:
    from docmind.cache.ocr import OcrError, recognize

    for index in range(frames):
        page = index + 1 if frames > 1 else None
        try:
            image.seek(index)
            image.load()
        except (OSError, ValueError) as error:  # a damaged or truncated frame fails alone
            yield Section("", page, error=f"unreadable image data: {error}")
            continue
        try:
            text = recognize(image)
        except OcrError as error:
            yield Section("", page, error=str(error))
            continue
        yield Section(text, page)


def _pdf_title(reader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary only loses the title
        return ""
    title = str(title).strip() if title else ""
    return "" if title.casefold() in _PLACEHOLDER_TITLES else title


_PLACEHOLDER_TITLES = frozenset({"untitled", "(anonymous)", "anonymous"})  # what PDF writers put when no one set it


def _pdf_outline(reader) -> dict[int, list[tuple[int, str]]]:
    """The bookmarks of a PDF as ``{page: [(level, title), ...]}``, in reading order; empty if it has none."""
    found: dict[int, list[tuple[int, str]]] = {}

    def walk(items: list, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1
            except Exception:  # a bookmark pointing nowhere is skipped, not fatal
                continue
            found.setdefault(page, []).append((level, str(item.title).strip()))

    try:
        walk(reader.outline, 1)
    except Exception:  # a damaged outline only loses the headings
        return {}
    return found


def _placed(text: str, headings: list[tuple[int, str]]) -> tuple[Heading, ...]:
    """Headings of a page placed where their title occurs in its text (in order; the page start if not found)."""
    placed = []
    position = 0
    flat = text.lower()
    for level, title in headings:
        at_line_start = re.compile(r"^\s*" + re.escape(title.lower()), re.MULTILINE).search(flat, position)
        found = at_line_start.start() if at_line_start else (flat.find(title.lower(), position) if title else -1)
        offset = found if found >= 0 else position
        placed.append(Heading(offset, level, title))
        position = offset
    return tuple(placed)


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
    titles = []
    for tag in main.find_all(_HTML_HEADING):
        titles.append(tag.get_text(" ", strip=True))
        tag.insert(0, f"{_MARK}{tag.name[1]}")
    body, headings = _unmark(main.get_text("\n", strip=True), titles)
    if title and title not in body:
        body = f"{title}\n{body}"
        headings = tuple(Heading(h.offset + len(title) + 1, h.level, h.text) for h in headings)
    return [Section(body, title=title or (headings[0].text if headings else ""), headings=headings)]


_HTML_HEADING = re.compile(r"^h[1-6]$")
_MARK = "\ue000"  # a private-use character marking where a heading starts, removed by ``_unmark``
_MARKED = re.compile(_MARK + r"([1-6])\n?")


def _unmark(text: str, titles: list[str]) -> tuple[str, tuple[Heading, ...]]:
    """Remove heading marks from ``text``; return it with the headings (``titles``, in order) found there."""
    parts = []
    headings = []
    length = 0
    last = 0
    for match, title in zip(_MARKED.finditer(text), titles):
        parts.append(text[last : match.start()])
        length += match.start() - last
        last = match.end()
        if title:
            headings.append(Heading(length, int(match.group(1)), title))
    parts.append(text[last:])
    return "".join(parts), tuple(headings)


def read_text(data: bytes, path: Path) -> list[Section]:
    return [Section(decode_text(data))]


def read_markdown(data: bytes, path: Path) -> list[Section]:
    """Markdown, with its ATX (``## Title``) and setext (underlined) headings."""
    text = decode_text(data)
    headings = []
    offset = 0
    fenced = False
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            atx = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
            underline = lines[index + 1].strip() if index + 1 < len(lines) else ""
            if atx:
                headings.append(Heading(offset, len(atx.group(1)), atx.group(2)))
            elif stripped and underline and set(underline) in ({"="}, {"-"}) and len(underline) >= 3:
                headings.append(Heading(offset, 1 if underline[0] == "=" else 2, stripped))
        offset += len(line)
    return [Section(text, title=_first_title(headings), headings=tuple(headings))]


_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def read_rst(data: bytes, path: Path) -> list[Section]:
    """reStructuredText, with its section titles (levels follow the order adornment styles first appear)."""
    text = decode_text(data)
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    styles: list[tuple[str, bool]] = []
    headings = []
    index = 0
    while index + 1 < len(lines):
        overline = _ADORNMENT.match(lines[index])
        title_at = index + 1 if overline else index
        if title_at + 1 >= len(lines):
            break
        title = lines[title_at].strip()
        under = _ADORNMENT.match(lines[title_at + 1])
        if (title and not _ADORNMENT.match(lines[title_at]) and under and len(lines[title_at + 1].strip()) >= len(title)
                and (not overline or overline.group(1) == under.group(1))):
            style = (under.group(1), bool(overline))
            if style not in styles:
                styles.append(style)
            headings.append(Heading(starts[index], styles.index(style) + 1, title))
            index = title_at + 2
            continue
        index += 1
    return [Section(text, title=_first_title(headings), headings=tuple(headings))]


def _first_title(headings: list[Heading]) -> str:
    return headings[0].text if headings else ""


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
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".html": read_html,
    ".htm": read_html,
    ".xhtml": read_html,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".rst": read_rst,
    ".txt": read_text,
    ".text": read_text,
    ".csv": read_csv,
    ".tsv": read_csv,
}


PAGED_READERS: dict[str, Callable[[bytes, Path, bool], PagedFile]] = {
    ".pdf": read_pdf,
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"), read_image),
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in READERS or path.suffix.lower() in PAGED_READERS


def open_file(data: bytes, path: Path, *, ocr: bool = True) -> PagedFile:
    """Open ``data`` (the bytes of ``path``) with the reader for its type; raise ``UnreadableFileError``.

    ``ocr=False`` leaves scanned pages unread and refuses images. Reading a page may raise
    ``UnreadableFileError`` too (a damaged file found out only then).
    """
    suffix = path.suffix.lower()
    if suffix in PAGED_READERS:
        return PAGED_READERS[suffix](data, path, ocr)
    reader = READERS.get(suffix)
    if reader is None:
        supported = ", ".join(sorted([*READERS, *PAGED_READERS]))
        raise UnreadableFileError(f"unsupported file type {path.suffix or '(none)'!r}; DocMind reads {supported}")
    sections = reader(data, path)
    title = next((section.title for section in sections if section.title), "")
    if not title and any(section.headings for section in sections):
        title = path.name
    return PagedFile(len(sections), title, iter(sections))


def read_file(data: bytes, path: Path, *, ocr: bool = True) -> list[Section]:
    """All sections of ``data`` (the bytes of ``path``) at once; raise ``UnreadableFileError``."""
    sections = list(open_file(data, path, ocr=ocr).sections)
    if not any(section.text.strip() for section in sections):
        raise UnreadableFileError("no text found in the file")
    return sections
