"""Small generated food pictures (SVG), one per stand-in photo id, so pages work offline.

A picture is a list of flat shapes. The same shapes are drawn as SVG and sampled on a coarse
grid for the picture's BlurHash, so the placeholder a page paints while the image loads looks
like the image, as Unsplash's do. Photo ids are random, but each shows one picture of a fixed
catalogue: a BlurHash costs ~30 ms of pure Python, so it is computed once per picture and
process, never once per photo. The encoder is PyPI's `blurhash`, the reference algorithm.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import blurhash

WIDTH, HEIGHT = 400, 300
SAMPLE_STEP = 10  # one sample per 10x10 square: a 40x30 grid
PICTURES = 64  # the catalogue: enough variety for a board, few enough to hash each once


@dataclass(frozen=True, slots=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str

    def svg(self) -> str:
        return (
            f'<circle cx="{self.cx:.0f}" cy="{self.cy:.0f}" r="{self.r:.0f}" fill="{self.fill}"/>'
        )

    def covers(self, x: float, y: float) -> bool:
        return (x - self.cx) ** 2 + (y - self.cy) ** 2 <= self.r**2


@dataclass(frozen=True, slots=True)
class Ellipse:
    cx: float
    cy: float
    rx: float
    ry: float
    fill: str

    def svg(self) -> str:
        return (
            f'<ellipse cx="{self.cx:.0f}" cy="{self.cy:.0f}" rx="{self.rx:.0f}" '
            f'ry="{self.ry:.0f}" fill="{self.fill}"/>'
        )

    def covers(self, x: float, y: float) -> bool:
        return ((x - self.cx) / self.rx) ** 2 + ((y - self.cy) / self.ry) ** 2 <= 1


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    rx: float = 0
    turn: int = 0  # degrees about (x, y); too small to matter in a BlurHash, which ignores it

    def svg(self) -> str:
        extra = f' rx="{self.rx:.0f}"' if self.rx else ""
        if self.turn:
            extra += f' transform="rotate({self.turn} {self.x:.0f} {self.y:.0f})"'
        return (
            f'<rect x="{self.x:.0f}" y="{self.y:.0f}" width="{self.width:.0f}" '
            f'height="{self.height:.0f}" fill="{self.fill}"{extra}/>'
        )

    def covers(self, x: float, y: float) -> bool:
        return self.x <= x <= self.x + self.width and self.y <= y <= self.y + self.height


@dataclass(frozen=True, slots=True)
class Bowl:
    """A bowl seen from the side: the quadratic curve from (left, rim) to (right, rim) whose
    control point lies 2 x depth below the rim's middle."""

    left: float
    right: float
    rim: float
    depth: float
    fill: str

    def svg(self) -> str:
        middle = (self.left + self.right) / 2
        return (
            f'<path d="M{self.left:.0f} {self.rim:.0f} Q{middle:.0f} '
            f'{self.rim + 2 * self.depth:.0f} {self.right:.0f} {self.rim:.0f} Z" '
            f'fill="{self.fill}"/>'
        )

    def covers(self, x: float, y: float) -> bool:
        half = (self.right - self.left) / 2
        u = (x - self.left - half) / half
        return abs(u) <= 1 and self.rim <= y <= self.rim + self.depth * (1 - u * u)


Shape = Circle | Ellipse | Rect | Bowl
Dish = Callable[[random.Random, str], list[Shape]]


def _around(rng: random.Random, lo: float, hi: float) -> tuple[float, float]:
    angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(lo, hi)
    return 200 + dist * math.cos(angle), 150 + dist * math.sin(angle)


def _pizza(rng: random.Random, background: str) -> list[Shape]:
    shapes: list[Shape] = [Circle(200, 150, 105, "#e9b464"), Circle(200, 150, 92, "#d9472b")]
    for _ in range(rng.randint(6, 9)):
        shapes.append(Circle(*_around(rng, 15, 70), 13, "#a3211a"))
    for _ in range(10):
        x, y = rng.uniform(130, 270), rng.uniform(85, 215)
        shapes.append(Ellipse(x, y, 9, 5, "#fff3c4"))
    return shapes


def _salad(rng: random.Random, background: str) -> list[Shape]:
    shapes: list[Shape] = [Ellipse(200, 170, 120, 60, "#f4f1ea")]
    for _ in range(26):
        x, y = rng.uniform(110, 290), rng.uniform(120, 185)
        color = rng.choice(["#5a9e3a", "#7cc242", "#3f7d2a", "#d8342c", "#f2c230"])
        shapes.append(Circle(x, y, rng.randint(10, 20), color))
    return shapes


def _donut(rng: random.Random, background: str) -> list[Shape]:
    glaze = rng.choice(["#f48fb1", "#8d5524", "#fff0f5", "#ba68c8"])
    shapes: list[Shape] = [Circle(200, 150, 100, "#d9a05b"), Circle(200, 150, 86, glaze)]
    for _ in range(30):
        x, y = _around(rng, 45, 80)
        color = rng.choice(["#ffeb3b", "#4fc3f7", "#e53935", "#ffffff", "#66bb6a"])
        shapes.append(Rect(x, y, 10, 3, color, turn=rng.randint(0, 180)))
    shapes.append(Circle(200, 150, 32, background))
    return shapes


def _sushi(rng: random.Random, background: str) -> list[Shape]:
    shapes: list[Shape] = [Rect(60, 200, 280, 24, "#3e2723", rx=6)]
    for i in range(4):
        x = 80 + i * 62
        fish = rng.choice(["#ff7043", "#ef5350", "#ffab91", "#fff59d"])
        shapes.append(Rect(x, 160, 52, 40, "#fafafa", rx=14))
        shapes.append(Rect(x - 2, 150, 56, 22, fish, rx=10))
    return shapes


def _fruit(rng: random.Random, background: str) -> list[Shape]:
    shapes: list[Shape] = [Bowl(90, 310, 150, 60, "#8d6e63")]
    for _ in range(7):
        x, y = rng.uniform(120, 280), rng.uniform(95, 145)
        color = rng.choice(["#e53935", "#fb8c00", "#fdd835", "#8e24aa", "#43a047"])
        shapes.append(Circle(x, y, rng.randint(20, 30), color))
    return shapes


DISHES: dict[str, tuple[Dish, str]] = {
    "pizza": (_pizza, "a pizza with pepperoni and mozzarella on a wooden table"),
    "salad": (_salad, "a fresh green salad with tomatoes and peppers"),
    "donut": (_donut, "a glazed donut with sprinkles"),
    "sushi": (_sushi, "four pieces of nigiri sushi on a board"),
    "fruit": (_fruit, "a bowl of colourful fruit"),
}
BACKGROUNDS = ["#f6e7d8", "#e8f0e3", "#f3e5f5", "#e3f2fd", "#fff8e1", "#fbe9e7"]


def dish_for(seed: str) -> tuple[str, str, str]:
    """(dish name, background colour, alt text) for a photo id, always the same for one id."""
    rng = random.Random(seed)
    name = rng.choice(sorted(DISHES))
    return name, rng.choice(BACKGROUNDS), DISHES[name][1]


def _shapes(seed: str) -> tuple[str, list[Shape], str]:
    name, background, alt = dish_for(seed)
    shapes = DISHES[name][0](random.Random(seed + name), background)
    return background, [Rect(0, 0, WIDTH, HEIGHT, background), *shapes], alt


def render_svg(seed: str, width: int = WIDTH) -> str:
    _, shapes, alt = _shapes(seed)
    height = width * HEIGHT // WIDTH
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{alt}</title>'
        f"{''.join(shape.svg() for shape in shapes)}</svg>"
    )


def sample(seed: str) -> list[list[tuple[int, int, int]]]:
    """The picture as rows of sRGB pixels, one per SAMPLE_STEP square (its centre's colour)."""
    _, shapes, _ = _shapes(seed)
    half = SAMPLE_STEP / 2
    return [
        [
            _rgb(next(s.fill for s in reversed(shapes) if s.covers(x + half, y + half)))
            for x in range(0, WIDTH, SAMPLE_STEP)
        ]
        for y in range(0, HEIGHT, SAMPLE_STEP)
    ]


def picture_for(photo_id: str) -> str:
    """The seed of the catalogue picture that a photo id shows, always the same one."""
    return f"picture-{zlib.crc32(photo_id.encode()) % PICTURES}"


_blur_hashes: dict[str, str] = {}


def blur_hash_for(seed: str) -> str:
    """The picture's BlurHash: 4 x 3 components, as Unsplash's photos carry. Computed once
    per seed (CPU-bound: call it off the event loop unless `known_blur_hash` has it)."""
    known = _blur_hashes.get(seed)
    if known is None:
        hashed: str = blurhash.encode(sample(seed), components_x=4, components_y=3)
        known = _blur_hashes[seed] = hashed
    return known


def known_blur_hash(seed: str) -> str | None:
    return _blur_hashes.get(seed)


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 255, value & 255
