#!/usr/bin/env python3
"""make_image_seeds.py - writes the libFuzzer seed corpora tests/fuzz/seeds/image/
(small BMP, PNM, PNG and TIFF files, a few hundred bytes each) and
tests/fuzz/seeds/inflate/ (one capacity byte, then a zlib stream).  Standard library
only; run it from anywhere: python3 tests/fuzz/make_image_seeds.py"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def pixels(w, h, ch):
    return bytes((x * 37 + y * 91 + k * 53) & 0xFF for y in range(h) for x in range(w) for k in range(ch))


def bmp(w, h, bpp, top_down=False):
    n_pal = min(1 << bpp, 16) if bpp <= 8 else 0
    pal = b"".join(bytes((i * 40 & 255, i * 80 & 255, i * 120 & 255, 0)) for i in range(n_pal))
    stride = (w * bpp + 31) // 32 * 4
    rows = b""
    for y in range(h):
        if bpp >= 24:
            row = pixels(w, 1, bpp // 8)
        else:
            bits = "".join(format((x + y) % n_pal, "0%db" % bpp) for x in range(w))
            bits += "0" * (-len(bits) % 8)
            row = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        rows += row + b"\0" * (stride - len(row))
    off = 54 + len(pal)
    hdr = b"BM" + struct.pack("<IHHI", off + len(rows), 0, 0, off)
    dib = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, 0, len(rows), 0, 0,
                      n_pal, 0)
    return hdr + dib + pal + rows


def png_chunk(t, body):
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)


def png(w, h, color, depth, level=9, filt=lambda y: y % 5):
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    row_bytes = (w * ch * depth + 7) // 8
    raw = b""
    for y in range(h):
        raw += bytes((filt(y),)) + pixels(row_bytes, 1, 1)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    if color == 3:
        out += png_chunk(b"PLTE", bytes(range(0, 256, 1))[:3 * 16] * 6)
    data = zlib.compress(raw, level)
    out += png_chunk(b"IDAT", data[:len(data) // 2]) + png_chunk(b"IDAT", data[len(data) // 2:])
    return out + png_chunk(b"IEND", b"")


def pnm(w, h, kind):
    ch = 3 if kind == "P6" else 1
    return ("%s\n# seed\n%d %d\n255\n" % (kind, w, h)).encode() + pixels(w, h, ch)


def tiff(w, h, spp, big_endian, rps):
    e = ">" if big_endian else "<"
    data = pixels(w, h, spp)
    strips = [(y, min(rps, h - y)) for y in range(0, h, rps)]
    n_tags = 10
    ifd_at = 8
    extra_at = ifd_at + 2 + n_tags * 12 + 4
    bits_at = extra_at
    offs_at = bits_at + 2 * spp
    counts_at = offs_at + 4 * len(strips)
    data_at = counts_at + 4 * len(strips)
    row = w * spp

    def entry(tag, typ, count, value):
        if typ == 3 and count == 1:
            return struct.pack(e + "HHIHH", tag, typ, count, value, 0)
        return struct.pack(e + "HHII", tag, typ, count, value)

    bits = entry(258, 3, spp, 8) if spp == 1 else entry(258, 3, spp, bits_at)
    offs = (entry(273, 4, 1, data_at) if len(strips) == 1 else entry(273, 4, len(strips), offs_at))
    counts = (entry(279, 4, 1, len(data)) if len(strips) == 1 else entry(279, 4, len(strips), counts_at))
    ifd = struct.pack(e + "H", n_tags) + b"".join([
        entry(256, 3, 1, w), entry(257, 3, 1, h), bits, entry(259, 3, 1, 1),
        entry(262, 3, 1, 2 if spp >= 3 else 1), offs, entry(277, 3, 1, spp), entry(278, 3, 1, rps), counts,
        entry(284, 3, 1, 1)]) + b"\0\0\0\0"
    extra = struct.pack(e + "H" * spp, *([8] * spp))
    extra += b"".join(struct.pack(e + "I", data_at + y * row) for y, _ in strips)
    extra += b"".join(struct.pack(e + "I", n * row) for _, n in strips)
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", ifd_at)
    return head + ifd + extra + data


def write(kind, name, data):
    d = os.path.join(HERE, "seeds", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    write("image", "rgb24_5x4.bmp", bmp(5, 4, 24))
    write("image", "rgb32_3x3_topdown.bmp", bmp(3, 3, 32, top_down=True))
    write("image", "pal8_6x5.bmp", bmp(6, 5, 8))
    write("image", "pal4_7x3.bmp", bmp(7, 3, 4))
    write("image", "pal1_9x2.bmp", bmp(9, 2, 1))
    write("image", "rgb_6x5.ppm", pnm(6, 5, "P6"))
    write("image", "grey_8x6.pgm", pnm(8, 6, "P5"))
    write("image", "rgb_8x6_dynamic.png", png(8, 6, 2, 8))
    write("image", "rgba_5x4.png", png(5, 4, 6, 8))
    write("image", "grey_9x7.png", png(9, 7, 0, 8))
    write("image", "greyalpha_4x4.png", png(4, 4, 4, 8))
    write("image", "pal2_10x3.png", png(10, 3, 3, 2))
    write("image", "grey1_17x3.png", png(17, 3, 0, 1))
    write("image", "rgb_6x3_stored.png", png(6, 3, 2, 8, level=0))
    write("image", "rgb_5x4_le.tif", tiff(5, 4, 3, False, 4))
    write("image", "rgba_4x5_be_strips.tif", tiff(4, 5, 4, True, 2))
    write("image", "grey_7x3.tif", tiff(7, 3, 1, False, 1))
    text = b"kiln kiln kiln inflate seed " * 8 + pixels(40, 1, 1)
    fixed = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_FIXED)
    write("inflate", "fixed", b"\x04" + fixed.compress(text) + fixed.flush())
    for level in (0, 1, 9):
        write("inflate", "level%d" % level, b"\x02" + zlib.compress(text, level))
    write("inflate", "too_small_cap", b"\x00" + zlib.compress(text, 9))


if __name__ == "__main__":
    main()
