"""Local OCR for scanned PDF pages and image files: RapidOCR on ONNX Runtime, whose models ship inside its wheel.

Nothing here is imported until a page without a text layer, or an image file, is read, so users
without scanned files pay nothing at start-up. PDF pages are rendered with pypdfium2 (PDFium, the
renderer of Chrome): it draws a page exactly as a viewer shows it, whatever the scan is made of
(JPEG, CCITT fax, JBIG2, several image strips, a rotated page), which extracting the embedded images
with pypdf would not.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

RENDER_DPI = 200
"""Scans are rendered at this resolution. At 150 dpi the recogniser already drops the spaces between
words of 14-point print (measured), which would leave whole sentences unsearchable."""
RETRY_DPI = 150
"""A page where nothing was found at ``RENDER_DPI`` is tried once more at this resolution: RapidOCR's
detector is sensitive to scale, and some pages it reads only there (measured on generated scans)."""

_lock = threading.Lock()  # one engine per process; ONNX Runtime uses every core for each page anyway


class OcrError(Exception):
    """OCR failed on one page; the message says why."""


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def recognize(image: Image) -> str:
    """The text in ``image``, one detected line per line of text, top to bottom."""
    import numpy as np

    try:
        pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]  # RapidOCR expects OpenCV's BGR order
        with _lock:
            found, _ = _engine()(pixels)
    except Exception as error:  # ONNX Runtime and OpenCV raise many types on odd images
        raise OcrError(f"OCR failed: {type(error).__name__}: {error}") from error
    return _lines(found or [])


def _lines(found: list) -> str:
    """Join RapidOCR's boxes into lines: boxes whose vertical centres are close share a line, left to right."""
    boxes = []
    for box, text, _score in found:
        ys = [point[1] for point in box]
        boxes.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(point[0] for point in box), text))
    boxes.sort()
    lines: list[list[tuple[float, str]]] = []
    last_centre = None
    for centre, height, left, text in boxes:
        if last_centre is None or centre - last_centre > height / 2:
            lines.append([])
            last_centre = centre
        lines[-1].append((left, text))
    return "\n".join(" ".join(text for _, text in sorted(line)) for line in lines)


class PdfRenderer:
    """Renders pages of one PDF to images for OCR, opening the document only if a page needs it."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._document: Any = None

    def page_text(self, number: int) -> str:
        """OCR the 1-based page ``number``; raise ``OcrError`` if it cannot be rendered or read."""
        text = recognize(self._render(number, RENDER_DPI))
        return text if text.strip() else recognize(self._render(number, RETRY_DPI))

    def _render(self, number: int, dpi: int) -> Image:
        try:
            import pypdfium2

            if self._document is None:
                self._document = pypdfium2.PdfDocument(self._data)
            page = self._document[number - 1]
            try:
                return page.render(scale=dpi / 72, grayscale=True).to_pil()
            finally:
                page.close()
        except Exception as error:  # PDFium raises PdfiumError and others on damaged pages
            raise OcrError(f"could not render the page for OCR: {type(error).__name__}: {error}") from error

    def close(self) -> None:
        if self._document is not None:
            self._document.close()
            self._document = None
