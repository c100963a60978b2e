"""Small generated food pictures (SVG), one per stand-in photo id, so pages work offline."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"

Dish = Callable[[random.Random], str]


def _pizza(rng: random.Random) -> str:
    parts = [
        '<circle cx="200" cy="150" r="105" fill="#e9b464"/>',
        '<circle cx="200" cy="150" r="92" fill="#d9472b"/>',
    ]
    for _ in range(rng.randint(6, 9)):
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(15, 70)
        x, y = 200 + dist * math.cos(angle), 150 + dist * math.sin(angle)
        parts.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="13" fill="#a3211a"/>')
    for _ in range(10):
        x, y = rng.uniform(130, 270), rng.uniform(85, 215)
        parts.append(f'<ellipse cx="{x:.0f}" cy="{y:.0f}" rx="9" ry="5" fill="#fff3c4"/>')
    return "".join(parts)


def _salad(rng: random.Random) -> str:
    parts = ['<ellipse cx="200" cy="170" rx="120" ry="60" fill="#f4f1ea"/>']
    for _ in range(26):
        x, y = rng.uniform(110, 290), rng.uniform(120, 185)
        color = rng.choice(["#5a9e3a", "#7cc242", "#3f7d2a", "#d8342c", "#f2c230"])
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{rng.randint(10, 20)}" fill="{color}"/>'
        )
    return "".join(parts)


def _donut(rng: random.Random) -> str:
    glaze = rng.choice(["#f48fb1", "#8d5524", "#fff0f5", "#ba68c8"])
    parts = [
        '<circle cx="200" cy="150" r="100" fill="#d9a05b"/>',
        f'<circle cx="200" cy="150" r="86" fill="{glaze}"/>',
    ]
    for _ in range(30):
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(45, 80)
        x, y = 200 + dist * math.cos(angle), 150 + dist * math.sin(angle)
        color = rng.choice(["#ffeb3b", "#4fc3f7", "#e53935", "#ffffff", "#66bb6a"])
        parts.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="10" height="3" fill="{color}" '
            f'transform="rotate({rng.randint(0, 180)} {x:.0f} {y:.0f})"/>'
        )
    parts.append('<circle cx="200" cy="150" r="32" fill="{bg}"/>')
    return "".join(parts)


def _sushi(rng: random.Random) -> str:
    parts = ['<rect x="60" y="200" width="280" height="24" rx="6" fill="#3e2723"/>']
    for i in range(4):
        x = 80 + i * 62
        fish = rng.choice(["#ff7043", "#ef5350", "#ffab91", "#fff59d"])
        parts.append(f'<rect x="{x}" y="160" width="52" height="40" rx="14" fill="#fafafa"/>')
        parts.append(f'<rect x="{x - 2}" y="150" width="56" height="22" rx="10" fill="{fish}"/>')
    return "".join(parts)


def _fruit(rng: random.Random) -> str:
    parts = ['<path d="M90 150 Q200 270 310 150 Z" fill="#8d6e63"/>']
    for _ in range(7):
        x, y = rng.uniform(120, 280), rng.uniform(95, 145)
        color = rng.choice(["#e53935", "#fb8c00", "#fdd835", "#8e24aa", "#43a047"])
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{rng.randint(20, 30)}" fill="{color}"/>'
        )
    return "".join(parts)


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


def render_svg(seed: str, width: int = 400) -> str:
    name, background, alt = dish_for(seed)
    body = DISHES[name][0](random.Random(seed + name)).replace("{bg}", background)
    height = width * 3 // 4
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 400 300" role="img"><title>{alt}</title>'
        f'<rect width="400" height="300" fill="{background}"/>{body}</svg>'
    )


def blur_hash_of(color: str) -> str:
    """A valid one-component BlurHash for a flat colour (what the page shows while loading)."""
    value = int(color.lstrip("#"), 16)
    return "00" + "".join(_BASE83[(value // 83**i) % 83] for i in (3, 2, 1, 0))
