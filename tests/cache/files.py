"""Generate real documents for the cache tests and the ingest benchmark."""

from __future__ import annotations

from pathlib import Path


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    """A PDF with one text page per item of ``pages`` (long text wraps over several lines)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt=password)
    for text in pages:
        lines = _wrap(text, 90)
        y = 800
        for line in lines:
            pdf.drawString(50, y, line)
            y -= 14
            if y < 40:
                break
        pdf.showPage()
    pdf.save()
    return path


def make_docx(path: Path, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def make_pptx(path: Path, slides: list[str]) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    for text in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[5])
        slide.shapes.title.text = text.split(".")[0]
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(8), Inches(4))
        box.text_frame.text = text
    presentation.save(str(path))
    return path


def make_html(path: Path, title: str, body: str) -> Path:
    path.write_text(
        f"""<!doctype html><html><head><title>{title}</title>
        <script>var trackingCode = "SCRIPTNOISE";</script><style>body {{ color: red }}</style></head>
        <body><nav><a href="/">Home</a> <a href="/about">NAVNOISE menu</a></nav>
        <header>Site banner</header>
        <main><h1>{title}</h1><p>{body}</p></main>
        <footer>FOOTERNOISE copyright</footer></body></html>""",
        encoding="utf-8",
    )
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def scanned_pages(sentences: list[str]) -> list:
    """One A4 page image (150 dpi, greyscale) per sentence, the text drawn by Pillow: a scan with no text layer."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=30)
    pages = []
    for sentence in sentences:
        page = Image.new("L", (1240, 1754), 255)
        ImageDraw.Draw(page).text((90, 160), sentence, fill=0, font=font)
        pages.append(page)
    return pages


def make_scanned_pdf(path: Path, sentences: list[str]) -> Path:
    """A PDF whose pages are only images of ``sentences``, like a scanner makes (no text layer)."""
    first, *rest = scanned_pages(sentences)
    first.save(path, "PDF", save_all=True, append_images=rest, resolution=150)
    return path
