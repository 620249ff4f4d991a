"""Draw the DocMind icon (a page with a speech bubble) and save it as .png, .ico and .icns.

Run once after changing the design: ``python packaging/icons/make_icons.py``; the outputs are committed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
SIZE = 1024


def draw_icon() -> Image.Image:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((64, 64, 960, 960), radius=200, fill=(37, 99, 235, 255))
    draw.rounded_rectangle((250, 170, 700, 760), radius=40, fill=(255, 255, 255, 255))
    for row in range(5):
        y = 270 + row * 85
        draw.rounded_rectangle((320, y, 630 - (row % 2) * 90, y + 30), radius=15, fill=(148, 163, 184, 255))
    draw.ellipse((520, 560, 860, 850), fill=(250, 204, 21, 255))
    draw.polygon([(600, 820), (560, 900), (680, 840)], fill=(250, 204, 21, 255))
    for x in (610, 690, 770):
        draw.ellipse((x - 22, 683, x + 22, 727), fill=(37, 99, 235, 255))
    return image


def main() -> None:
    icon = draw_icon()
    icon.resize((512, 512), Image.LANCZOS).save(HERE / "docmind.png")
    icon.save(HERE / "docmind.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    icon.save(HERE / "docmind.icns")


if __name__ == "__main__":
    main()
