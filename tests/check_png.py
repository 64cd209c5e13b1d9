#!/usr/bin/env python3
"""check_png.py FILE WIDTH HEIGHT: FILE is a PNG of that size (8-bit RGB or RGBA, as
gnuplot's pngcairo writes), of a plausible byte size, and a picture rather than a blank:
at least 2% of its pixels are the plots' blues (blue well above red). Prints what it
found; exits 1 when it is not so. Standard library only (decodes the PNG itself)."""
import os
import struct
import sys
import zlib


def pixels(data):
    """(width, height, channels, rows of bytes) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    at, idat, ihdr = 8, b"", None
    while at < len(data):
        n, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    w, h, depth, color = ihdr[:4]
    assert depth == 8 and color in (2, 6), f"bit depth {depth}, colour type {color}"
    ch = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the row filter (PNG spec, section 9)
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows


def main():
    path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = open(path, "rb").read()
    w, h, ch, rows = pixels(data)
    blue = sum(1 for row in rows for i in range(0, w * ch, ch) if row[i + 2] > row[i] + 60)
    share = blue / (w * h)
    print(f"{path}: {w}x{h}, {len(data)} bytes, {100 * share:.1f}% blue pixels")
    ok = (w, h) == (want_w, want_h) and 10_000 < len(data) < 5_000_000 and share > 0.02
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
