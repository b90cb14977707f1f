"""A QR code reader for the console's browser test: it "scans" the picture the link
generator shows (a PNG, as the page renders it) the way a phone would read a clean image.

Small on purpose: a straight, unrotated code with its quiet zone, as segno draws it and
Chromium paints it. It reads the PNG (zlib and the five row filters), samples each module
at its centre, tries the eight masks and four error-correction levels, and keeps the one
whose data stream is well formed (a byte-mode segment, the terminator, and the standard's
alternating pad codewords). segno supplies only the standard's tables (block structure,
alignment positions, which modules are function patterns); the reading is done here, and
the tests below check it against codes segno makes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest
import segno
from segno import consts, encoder

PAD = (0xEC, 0x11)
LEVELS = (consts.ERROR_LEVEL_L, consts.ERROR_LEVEL_M, consts.ERROR_LEVEL_Q, consts.ERROR_LEVEL_H)
MASKS: tuple[Callable[[int, int], bool], ...] = (
    lambda i, j: (i + j) % 2 == 0,
    lambda i, j: i % 2 == 0,
    lambda i, j: j % 3 == 0,
    lambda i, j: (i + j) % 3 == 0,
    lambda i, j: (i // 2 + j // 3) % 2 == 0,
    lambda i, j: (i * j) % 2 + (i * j) % 3 == 0,
    lambda i, j: ((i * j) % 2 + (i * j) % 3) % 2 == 0,
    lambda i, j: ((i + j) % 2 + (i * j) % 3) % 2 == 0,
)


class NotAQrCode(ValueError):
    pass


# ----- PNG -------------------------------------------------------------------------------


def read_png(data: bytes) -> list[list[bool]]:
    """Dark (True) or light for every pixel of a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise NotAQrCode("not a PNG")
    pos, idat, palette = 8, b"", b""
    width = height = depth = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bits = depth * channels
    stride, step = (width * bits + 7) // 8, max(1, bits // 8)
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                near = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + near) & 0xFF
        rows.append(bytes(line))
        previous = line
    pixels = []
    for line in rows:
        row = []
        for x in range(width):
            if depth < 8:
                per_byte = 8 // depth
                value = (line[x // per_byte] >> (8 - depth * (x % per_byte + 1))) & (
                    (1 << depth) - 1
                )
                level = value * 255 // ((1 << depth) - 1) if color == 0 else 0
                if color == 3:
                    level = sum(palette[value * 3 : value * 3 + 3]) // 3
            elif color == 3:
                level = sum(palette[line[x] * 3 : line[x] * 3 + 3]) // 3
            else:
                sample = line[x * step : x * step + step]
                level = sum(sample[:3]) // len(sample[:3]) if color in (2, 6) else sample[0]
            row.append(level < 128)
        pixels.append(row)
    return pixels


# ----- modules ---------------------------------------------------------------------------


def modules(pixels: list[list[bool]]) -> list[list[bool]]:
    """The module grid: the top-left finder's first dark row gives the scale (7 modules)."""
    top = next((y for y, row in enumerate(pixels) if any(row)), None)
    if top is None:
        raise NotAQrCode("a blank picture")
    left = pixels[top].index(True)
    run = 0
    while left + run < len(pixels[top]) and pixels[top][left + run]:
        run += 1
    scale = run / 7
    size = round((len(pixels[top]) - 2 * left) / scale)
    if size < 21 or (size - 17) % 4:
        raise NotAQrCode(f"no QR code size: {size} modules")
    return [
        [pixels[int(top + (i + 0.5) * scale)][int(left + (j + 0.5) * scale)] for j in range(size)]
        for i in range(size)
    ]


def data_positions(size: int) -> list[tuple[int, int]]:
    """The data modules in the standard's placement order (two-column zigzag)."""
    version = (size - 17) // 4
    reserved = encoder.make_matrix(size, size, reserve_regions=True)
    encoder.add_finder_patterns(reserved, size, size)
    if version > 1:
        encoder.add_alignment_patterns(reserved, size, size)
    order = []
    right = size - 1
    upwards = True
    while right > 0:
        if right == 6:  # the vertical timing pattern
            right -= 1
        rows = range(size - 1, -1, -1) if upwards else range(size)
        for i in rows:
            for j in (right, right - 1):
                if reserved[i][j] == 0x2:
                    order.append((i, j))
        upwards = not upwards
        right -= 2
    return order


def decode(grid: list[list[bool]]) -> str:
    size = len(grid)
    version = (size - 17) // 4
    positions = data_positions(size)
    for mask in MASKS:
        bits = [grid[i][j] ^ mask(i, j) for i, j in positions]
        codewords = [
            sum(int(b) << (7 - k) for k, b in enumerate(bits[n : n + 8]))
            for n in range(0, len(bits) - 7, 8)
        ]
        for level in LEVELS:
            text = _read_stream(_data_codewords(codewords, consts.ECC[version][level]), version)
            if text is not None:
                return text
    raise NotAQrCode("no mask and level gives a well-formed byte segment")


def _data_codewords(codewords: list[int], layout: tuple[consts.EC, ...]) -> list[int]:
    sizes = [ec.num_data for ec in layout for _ in range(ec.num_blocks)]
    blocks: list[list[int]] = [[] for _ in sizes]
    it = iter(codewords)
    for n in range(max(sizes)):
        for block, size in zip(blocks, sizes, strict=True):
            if n < size:
                block.append(next(it))
    return [c for block in blocks for c in block]


def _read_stream(data: list[int], version: int) -> str | None:
    bits = "".join(f"{c:08b}" for c in data)
    if bits[:4] != "0100":  # byte mode
        return None
    count_bits = 8 if version < 10 else 16
    length = int(bits[4 : 4 + count_bits], 2)
    start = 4 + count_bits
    end = start + 8 * length
    if end > len(bits):
        return None
    # Then zero bits (the terminator, and filling to a codeword), then EC 11 EC 11 ...
    if not any(
        not bits[end : start * 8].strip("0")
        and all(data[n] == PAD[(n - start) % 2] for n in range(start, len(data)))
        for start in range((end + 7) // 8, len(data) + 1)
    ):
        return None
    payload = bytes(int(bits[k : k + 8], 2) for k in range(start, end, 8))
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def scan_qr(png: bytes) -> str:
    """The text of the QR code in a PNG picture."""
    return decode(modules(read_png(png)))


# ----- the reader's own tests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://gw.example.com/authorize/wx0123456789abcdef?auth_type=3",
        "http://127.0.0.1:41234/authorize/wx0123456789abcdef?auth_type=1&biz_appid="
        "wx00000000000000aa&category_ids=1%7C2%7C15",
        "x",
        "https://gw.example.com/" + "a" * 180,
    ],
)
@pytest.mark.parametrize("error", ["l", "m", "q", "h"])
def test_it_reads_what_segno_writes(text: str, error: str) -> None:
    code = segno.make(text, error=error, boost_error=False, micro=False)
    for scale in (1, 4):
        import base64

        png = base64.b64decode(code.png_data_uri(scale=scale, border=2).split(",", 1)[1])
        assert scan_qr(png) == text


def test_every_mask_reads() -> None:
    for mask in range(8):
        code = segno.make("https://gw.example.com/m", mask=mask, micro=False)
        import base64

        png = base64.b64decode(code.png_data_uri(scale=3, border=4).split(",", 1)[1])
        assert scan_qr(png) == "https://gw.example.com/m"


def test_a_picture_without_a_code_is_refused() -> None:
    blank = segno.make("x", micro=False).png_data_uri(scale=2, border=2, dark="#fff")
    import base64

    with pytest.raises(NotAQrCode):
        scan_qr(base64.b64decode(blank.split(",", 1)[1]))
