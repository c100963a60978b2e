"""The stand-in's BlurHashes (PyPI `blurhash`) look like its pictures."""

from __future__ import annotations

import blurhash

from standin.images import blur_hash_for, dish_for, sample


def test_a_stand_in_photo_hash_looks_like_its_picture() -> None:
    seed = "Zq3-food_01"
    hash_ = blur_hash_for(seed)
    assert len(hash_) == 4 + 2 * 4 * 3  # 4 x 3 components, like Unsplash's
    decoded = blurhash.decode(hash_, 40, 30)
    picture = sample(seed)
    corner = [sum(p[c] for p in picture[0][:3]) / 3 for c in range(3)]
    assert all(abs(a - b) < 40 for a, b in zip(decoded[0][0], corner, strict=True))
    _, background, _ = dish_for(seed)
    assert picture[0][0] == tuple(int(background[i : i + 2], 16) for i in (1, 3, 5))
    assert len({tuple(p) for row in decoded for p in row}) > 10  # not one flat colour
