"""Draw the app icon (a stylised face with a check mark) into resources/: icon.png and icon.ico.

Only numpy and OpenCV, both app dependencies. The outputs are committed; run this again only to
change the design:  python packaging/make_icon.py
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
BLUE = (52, 101, 164)  # RGB
GREEN = (46, 160, 67)
SKIN = (245, 222, 179)
DARK = (40, 44, 52)


def draw(size: int = 1024) -> np.ndarray:
    """An RGBA image: a rounded blue tile, a simple face, a green check badge."""
    s = size / 1024
    rgba = np.zeros((size, size, 4), np.uint8)

    def px(v: float) -> int:
        return int(round(v * s))

    def layer(paint) -> None:
        canvas = np.zeros((size, size, 3), np.uint8)
        mask = np.zeros((size, size), np.uint8)
        paint(canvas, mask)
        on = mask > 0
        rgba[on, :3] = canvas[on]
        rgba[on, 3] = 255

    def tile(canvas, mask):
        r, m = px(180), px(40)
        for img, colour in ((canvas, BLUE), (mask, 255)):
            cv2.rectangle(img, (m + r, m), (size - m - r, size - m), colour, -1, cv2.LINE_AA)
            cv2.rectangle(img, (m, m + r), (size - m, size - m - r), colour, -1, cv2.LINE_AA)
            for cx in (m + r, size - m - r):
                for cy in (m + r, size - m - r):
                    cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)

    def face(canvas, mask):
        centre, axes = (px(440), px(470)), (px(250), px(300))
        for img, colour in ((canvas, SKIN), (mask, 255)):
            cv2.ellipse(img, centre, axes, 0, 0, 360, colour, -1, cv2.LINE_AA)

    def features(canvas, mask):
        for img, colour in ((canvas, DARK), (mask, 255)):
            for ex in (px(350), px(530)):
                cv2.circle(img, (ex, px(410)), px(38), colour, -1, cv2.LINE_AA)
            cv2.ellipse(img, (px(440), px(560)), (px(110), px(70)), 0, 20, 160, colour, px(26), cv2.LINE_AA)

    def badge(canvas, mask):
        centre, r = (px(740), px(740)), px(210)
        for img, colour in ((canvas, (255, 255, 255)), (mask, 255)):
            cv2.circle(img, centre, r + px(28), colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, centre, r, GREEN, -1, cv2.LINE_AA)
        tick = np.array([[px(640), px(745)], [px(715), px(820)], [px(850), px(660)]], np.int32)
        cv2.polylines(canvas, [tick], False, (255, 255, 255), px(58), cv2.LINE_AA)

    for paint in (tile, face, features, badge):
        layer(paint)
    return rgba


def png_bytes(rgba: np.ndarray, size: int) -> bytes:
    """The icon scaled to size x size, as PNG bytes."""
    small = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()


def ico_bytes(rgba: np.ndarray, sizes=ICO_SIZES) -> bytes:
    """A Windows .ico holding one PNG-compressed image per size (valid since Windows Vista)."""
    images = [png_bytes(rgba, n) for n in sizes]
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = len(header) + 16 * len(images)
    directory, data = b"", b""
    for n, image in zip(sizes, images):
        directory += struct.pack("<BBBBHHII", n % 256, n % 256, 0, 0, 1, 32, len(image), offset + len(data))
        data += image
    return header + directory + data


def main() -> None:
    """Draw the icon and write resources/icon.png and resources/icon.ico."""
    rgba = draw()
    RESOURCES.mkdir(exist_ok=True)
    (RESOURCES / "icon.png").write_bytes(png_bytes(rgba, 256))
    (RESOURCES / "icon.ico").write_bytes(ico_bytes(rgba))
    print(f"wrote {RESOURCES / 'icon.png'} and {RESOURCES / 'icon.ico'}")


if __name__ == "__main__":
    main()
