"""Readers on real generated files: text extracted, pages kept, boilerplate dropped, bad input refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docmind.cache.pipeline import clean_text
from docmind.cache.readers import UnreadableFileError, decode_text, read_file
from tests.cache.files import make_docx, make_html, make_pdf, make_pptx


def read(path: Path):
    return read_file(path.read_bytes(), path)


def test_pdf_keeps_one_based_page_numbers(tmp_path: Path) -> None:
    sections = read(make_pdf(tmp_path / "a.pdf", ["alpha page text", "beta page text", "gamma page text"]))
    assert [(s.page, s.text.strip()) for s in sections] == [
        (1, "alpha page text"), (2, "beta page text"), (3, "gamma page text")
    ]


def test_docx_reads_paragraphs_and_tables(tmp_path: Path) -> None:
    [section] = read(make_docx(tmp_path / "a.docx", ["First paragraph.", "Second one."], [["Part", "Price"], ["bolt", "3"]]))
    assert section.page is None
    assert "First paragraph." in section.text and "Second one." in section.text
    assert "bolt | 3" in section.text


def test_pptx_gives_one_section_per_slide(tmp_path: Path) -> None:
    sections = read(make_pptx(tmp_path / "a.pptx", ["Apples. Red fruit.", "Pears. Green fruit."]))
    assert [s.page for s in sections] == [1, 2]
    assert "Green fruit" in sections[1].text and "Green fruit" not in sections[0].text


def test_html_keeps_main_text_without_scripts_or_navigation(tmp_path: Path) -> None:
    [section] = read(make_html(tmp_path / "a.html", "Tomato care", "Water tomatoes every morning."))
    assert "Water tomatoes every morning." in section.text
    for noise in ("SCRIPTNOISE", "NAVNOISE", "FOOTERNOISE", "color: red"):
        assert noise not in section.text


def test_markdown_rst_and_csv(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\nSome *markdown* text.", encoding="utf-8")
    (tmp_path / "a.rst").write_text("Title\n=====\n\nSome rst text.", encoding="utf-8")
    (tmp_path / "a.csv").write_text("part,price\nwidget,4.50\ngizmo,7\n", encoding="utf-8")
    assert "Some *markdown* text." in read(tmp_path / "a.md")[0].text
    assert "Some rst text." in read(tmp_path / "a.rst")[0].text
    assert read(tmp_path / "a.csv")[0].text == "part: widget; price: 4.50\npart: gizmo; price: 7"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café crème brûlée à la française, déjà vu. ", "latin-1"),
        ("Grüße aus München, schöne Straße. ", "cp1252"),
        ("Привет мир, как дела? Это тест кодировки. ", "cp1251"),
        ("Zażółć gęślą jaźń, to jest polski tekst. ", "cp1250"),
        ("日本語のテキストです。これはテストです。", "shift_jis"),
        ("Unicode text with a BOM: naïve façade. ", "utf-16"),
    ],
)
def test_non_utf8_text_is_decoded_correctly(text: str, encoding: str) -> None:
    assert decode_text((text * 5).encode(encoding)).startswith(text.strip())


def test_binary_data_named_txt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "random.txt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(UnreadableFileError, match="binary data"):
        read(path)


def test_corrupt_and_encrypted_pdfs_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without end")
    with pytest.raises(UnreadableFileError, match="not a readable PDF"):
        read(corrupt)
    encrypted = make_pdf(tmp_path / "locked.pdf", ["secret"], password="hunter2")
    with pytest.raises(UnreadableFileError, match="encrypted PDF"):
        read(encrypted)


def test_csv_with_an_oversized_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dump.csv"
    path.write_text('id,blob\n1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(UnreadableFileError, match="not a readable CSV file: field larger than field limit"):
        read(path)


def test_damaged_office_files_are_refused(tmp_path: Path) -> None:
    for name in ("bad.docx", "bad.pptx"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really a zip")
        with pytest.raises(UnreadableFileError, match="not a readable"):
            read(tmp_path / name)


def test_clean_text_normalises_whitespace_ligatures_and_hyphenation() -> None:
    assert clean_text("The \ufb01rst  line of inter-\nnational   text\r\n\n\n\nnext\x07 para ") == (
        "The first line of international text\n\nnext para"
    )
