"""BlurHash encoding (https://blurha.sh), the algorithm of the reference implementation.

The image's colours, in linear light, are projected onto a few cosine waves per axis; the
hash is the average colour plus the quantised weights of the others, in base 83.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"

Pixel = Sequence[int]


def encode(image: Sequence[Sequence[Pixel]], components_x: int, components_y: int) -> str:
    """The BlurHash of `image`, rows of sRGB (r, g, b) pixels, 0-255."""
    if not (1 <= components_x <= 9 and 1 <= components_y <= 9):
        raise ValueError("a BlurHash has 1 to 9 components per axis")
    height, width = len(image), len(image[0])
    linear = [[[_to_linear(c) for c in pixel[:3]] for pixel in row] for row in image]
    factors = []
    for j in range(components_y):
        for i in range(components_x):
            scale = (1 if i == j == 0 else 2) / (width * height)
            total = [0.0, 0.0, 0.0]
            for y in range(height):
                wave_y = math.cos(math.pi * j * y / height)
                for x in range(width):
                    basis = wave_y * math.cos(math.pi * i * x / width)
                    for c in range(3):
                        total[c] += basis * linear[y][x][c]
            factors.append([scale * t for t in total])
    dc, ac = factors[0], factors[1:]
    head = _base83(components_x - 1 + (components_y - 1) * 9, 1)
    if not ac:
        return head + _base83(0, 1) + _base83(_dc_value(dc), 4)
    quantised_max = max(0, min(82, math.floor(max(abs(v) for f in ac for v in f) * 166 - 0.5)))
    maximum = (quantised_max + 1) / 166
    return (
        head
        + _base83(quantised_max, 1)
        + _base83(_dc_value(dc), 4)
        + "".join(_base83(_ac_value(f, maximum), 2) for f in ac)
    )


def _dc_value(rgb: Sequence[float]) -> int:
    r, g, b = (_to_srgb(v) for v in rgb)
    return (r << 16) + (g << 8) + b


def _ac_value(rgb: Sequence[float], maximum: float) -> int:
    r, g, b = (max(0, min(18, math.floor(_sign_pow(v / maximum, 0.5) * 9 + 9.5))) for v in rgb)
    return r * 19 * 19 + g * 19 + b


def _sign_pow(value: float, exponent: float) -> float:
    return math.copysign(abs(value) ** exponent, value)


def _to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _base83(value: int, length: int) -> str:
    return "".join(BASE83[value // 83 ** (length - 1 - i) % 83] for i in range(length))
