"""OCR of scanned PDFs and images, with real scans drawn by Pillow, the real RapidOCR models and a real SQLite file."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from docmind.cache import Ingestor, Searcher
from docmind.config import Settings
from docmind.storage import open_database
from tests.cache.conftest import run_cli
from tests.cache.files import make_pdf, make_scanned_pdf, scanned_pages

SCANNED = [
    "The lighthouse keeper polished the brass lamp every evening.",
    "Quarterly revenue from the orchard grew by eleven percent.",
    "The submarine propeller needs a torque of ninety newton metres.",
]
PICTURED = "Penguins huddle together to survive the antarctic winter."


def scans(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_scanned_pdf(folder / "scan.pdf", SCANNED)
    scanned_pages([PICTURED])[0].save(folder / "note.png")
    return folder


def test_scanned_pdf_pages_and_images_are_searchable_on_their_page(settings: Settings, tmp_path: Path) -> None:
    folder = scans(tmp_path / "docs")
    tiff_pages = scanned_pages(["Kestrels hover above the motorway verge.", "Otters juggle pebbles in the river."])
    tiff_pages[0].save(folder / "field notes.tiff", save_all=True, append_images=tiff_pages[1:])
    scanned_pages(["Walnut trees drop their leaves early."])[0].save(folder / "walnut.webp")
    scanned_pages(["Hedgehogs sleep under the woodpile."])[0].convert("RGB").save(folder / "hedgehog.jpg")

    report = Ingestor(settings).ingest([folder])

    assert (report.files_new, report.files_failed, report.pages_failed) == (5, [], [])
    searcher = Searcher(settings)
    expected = [("scan.pdf", page, sentence) for page, sentence in enumerate(SCANNED, start=1)] + [
        ("note.png", None, PICTURED),
        ("field notes.tiff", 1, "Kestrels hover above the motorway verge."),
        ("field notes.tiff", 2, "Otters juggle pebbles in the river."),
        ("walnut.webp", None, "Walnut trees drop their leaves early."),
        ("hedgehog.jpg", None, "Hedgehogs sleep under the woodpile."),
    ]
    for name, page, sentence in expected:
        best = searcher.search(sentence, 1)[0]
        assert (Path(best.source).name, best.page) == (name, page)
        assert sentence.lower() in " ".join(best.text.split()).lower()


def test_a_pdf_mixing_text_and_scanned_pages_reads_both(settings: Settings, tmp_path: Path) -> None:
    from pypdf import PdfWriter

    text_pdf = make_pdf(tmp_path / "typed.pdf", ["Typed page about the railway timetable for the coastal line."])
    scan_pdf = make_scanned_pdf(tmp_path / "scanned.pdf", [SCANNED[2]])
    writer = PdfWriter()
    writer.append(str(text_pdf))
    writer.append(str(scan_pdf))
    folder = tmp_path / "docs"
    folder.mkdir()
    writer.write(folder / "mixed.pdf")

    Ingestor(settings).ingest([folder])

    pages = {row[0]: row[1] for row in open_database(settings.db_path).read("SELECT page, text FROM chunks")}
    assert "railway timetable" in pages[1] and "propeller" in pages[2]


def test_a_page_that_cannot_be_read_is_reported_and_the_others_are_ingested(settings: Settings, tmp_path: Path) -> None:
    from PIL import Image

    first, second, third = scanned_pages(["Kestrels hover above the motorway verge.", "lost", PICTURED])
    buffer = io.BytesIO()
    first.save(buffer, "TIFF", compression="tiff_adobe_deflate", save_all=True, append_images=[second, third])
    data = bytearray(buffer.getvalue())
    frames = Image.open(io.BytesIO(bytes(data)))
    frames.seek(1)
    start, length = frames.tag_v2[273][0], frames.tag_v2[279][0]
    data[start : start + length] = b"\xff" * length  # page 2's image data is damaged
    path = tmp_path / "damaged.tif"
    path.write_bytes(bytes(data))

    report = Ingestor(settings).ingest([path])

    assert report.files_new == 1 and report.files_failed == []
    assert [(failure.path, failure.page) for failure in report.pages_failed] == [(str(path), 2)]
    assert "unreadable image data" in report.pages_failed[0].error
    assert any("page 2 was left out" in notice for notice in report.notices)
    pages = sorted(row[0] for row in open_database(settings.db_path).read("SELECT DISTINCT page FROM chunks"))
    assert pages == [1, 3]


def test_ocr_switched_off_refuses_scans_with_a_clear_message(settings: Settings, tmp_path: Path) -> None:
    folder = scans(tmp_path / "docs")
    (folder / "plain.txt").write_text("Typed notes still get in.")

    report = Ingestor(settings.model_copy(update={"ocr": False})).ingest([folder])

    reasons = {Path(failure.path).name: failure.error for failure in report.files_failed}
    assert "OCR is switched off" in reasons["scan.pdf"] and "OCR" in reasons["note.png"]
    assert report.files_new == 1


def test_a_damaged_image_fails_alone(settings: Settings, tmp_path: Path) -> None:
    folder = scans(tmp_path / "docs")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")

    report = Ingestor(settings).ingest([folder])

    assert [(Path(f.path).name, f.error) for f in report.files_failed] == [
        ("broken.jpg", "not a readable image (damaged or not really a .jpg file)")
    ]
    assert report.files_new == 2


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to cut the network")
def test_ocr_runs_offline_in_a_fresh_process(data_dir: Path, tmp_path: Path) -> None:
    """With no network but loopback (a new network namespace), the CLI still OCRs: nothing is downloaded."""
    import subprocess

    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow a private network namespace")
    folder = scans(tmp_path / "docs")
    result = run_cli("ingest", str(folder), "--json", wrapper=["unshare", "-rn"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files_new"] == 2
