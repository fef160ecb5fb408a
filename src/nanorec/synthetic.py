"""A small synthetic shop whose purchase sequences have learnable structure.

The generator returns tables in the challenge layout, so the ingest code that reads
real files also reads these. Items belong to categories and have titles built from
words of their category. Each item has a few fixed successors, and a user's next
purchase follows one of the current item's successors most of the time, else a
popular item of the user's favourite category. A model that learns transitions
therefore beats popularity by a wide margin, and one that reads titles learns
categories faster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

_CATEGORIES = [
    ("Skin Care", ["Serum", "Moisturizer", "Cleanser", "Toner", "Face Mask"]),
    ("Makeup", ["Lipstick", "Mascara", "Foundation", "Eyeliner", "Blush"]),
    ("Hair Care", ["Shampoo", "Conditioner", "Hair Oil", "Styling Gel", "Hair Spray"]),
    ("Fragrance", ["Eau de Parfum", "Body Mist", "Cologne", "Perfume Oil"]),
    ("Nails", ["Nail Polish", "Top Coat", "Cuticle Oil", "Nail File"]),
    ("Bath & Body", ["Body Wash", "Body Lotion", "Bath Salts", "Hand Cream"]),
    ("Tools", ["Brush Set", "Sponge", "Tweezers", "Mirror", "Hair Dryer"]),
    ("Men's Grooming", ["Shaving Cream", "Beard Oil", "Aftershave", "Razor"]),
]
_ADJECTIVES = [
    "Hydrating",
    "Matte",
    "Volumizing",
    "Gentle",
    "Organic",
    "Long-Lasting",
    "Repairing",
    "Brightening",
    "Soothing",
    "Waterproof",
    "Natural",
    "Intense",
]
_BRANDS = [
    "Aurelle",
    "Bloomcraft",
    "Cedar & Co",
    "Dewline",
    "Elanor",
    "Fjordskin",
    "Glowa",
    "Halcyon",
    "Iris Lane",
    "Juniper",
    "Kalma",
    "Lumen",
]


@dataclass(frozen=True)
class RawTables:
    """Tables in the challenge layout (train.csv, test.csv, item_metadata.csv,
    id_mappings.json as `item_mapping`)."""

    train: pd.DataFrame
    test: pd.DataFrame
    item_metadata: pd.DataFrame
    item_mapping: dict[str, int]


def generate(n_users: int, n_items: int, seed: int, shape: str = "small") -> RawTables:
    """Generate a deterministic synthetic shop.

    Args:
        n_users: number of users. The last purchase of each is held out as the
            hidden test item (as in the challenge).
        n_items: number of items; at least 20.
        seed: seed of the NumPy generator; the same seed gives the same tables.
        shape: "small" gives each user 5 to 40 purchases (one user 120) and walks
            one user at a time. "challenge" gives the challenge's history lengths
            (see `challenge_lengths`) and walks all users at once, so it scales to
            the challenge's 868,218 users. The two give different tables.

    Returns:
        RawTables with encoded integer ids, timestamps in seconds and item text.
    """
    if n_items < 20:
        raise ValueError(f"synthetic catalog needs at least 20 items, got {n_items}")
    if shape == "challenge":
        return _generate_challenge_shape(n_users, n_items, seed)
    if shape != "small":
        raise ValueError(f"synthetic shape {shape!r} is not one of small, challenge")
    rng = np.random.default_rng(seed)

    # Items: a category, a brand and a title; popularity follows a Zipf-like law.
    category = rng.integers(0, len(_CATEGORIES), size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity)
    by_category = [np.flatnonzero(category == c) for c in range(len(_CATEGORIES))]

    # Successors: three items, mostly from the same category, with falling weight.
    successors = np.empty((n_items, 3), dtype=np.int64)
    for item in range(n_items):
        pool = by_category[category[item]]
        if len(pool) < 4 or rng.random() < 0.25:
            pool = np.arange(n_items)
        pool = pool[pool != item]
        successors[item] = rng.choice(pool, size=3, replace=False)
    successor_weights = np.array([0.6, 0.25, 0.15])

    # Users: walk the successor graph, sometimes jumping to a favourite category.
    lengths = np.minimum(4 + rng.geometric(1 / 6, size=n_users), 40)
    if n_users > 10:
        lengths[rng.integers(n_users)] = 120  # one heavy user, longer than a block
    lengths = np.minimum(lengths, n_items)  # a walk never repeats an item
    users, items, stamps = [], [], []
    for user, length in enumerate(lengths):
        favourite = rng.integers(len(_CATEGORIES))
        sequence = _walk(
            rng,
            int(length),
            successors,
            successor_weights,
            by_category[favourite],
            popularity,
        )
        users.append(np.full(len(sequence), user))
        items.append(sequence)
        start = rng.integers(1_300_000_000, 1_400_000_000)
        gaps = rng.integers(0, 86_400 * 30, size=len(sequence))
        gaps[rng.random(len(sequence)) < 0.05] = 0  # a few same-second purchases
        stamps.append(start + np.cumsum(gaps))
    user_col = np.concatenate(users)
    item_col = np.concatenate(items)
    stamp_col = np.concatenate(stamps)

    # Hold out each user's last purchase, as the challenge does.
    is_last = np.r_[user_col[1:] != user_col[:-1], True]
    train = pd.DataFrame(
        {
            "user_id": user_col[~is_last],
            "item_id": item_col[~is_last],
            "rating": rng.integers(1, 6, size=int((~is_last).sum())).astype(float),
            "timestamp": stamp_col[~is_last],
        }
    )
    test = pd.DataFrame({"user_id": np.arange(n_users), "predictions": 0})
    asins = [f"S{item:09d}" for item in range(n_items)]
    metadata = pd.DataFrame(
        {
            "parent_asin": asins,
            "title": [_title(rng, category[item]) for item in range(n_items)],
            "store": [_BRANDS[i] for i in rng.integers(len(_BRANDS), size=n_items)],
            "categories": [f"'Beauty', '{_CATEGORIES[c][0]}'" for c in category],
            "price": np.round(rng.uniform(2, 80, size=n_items), 2),
        }
    )
    logger.info(
        "generated %d users, %d items, %d train rows", n_users, n_items, len(train)
    )
    return RawTables(train, test, metadata, dict(zip(asins, range(n_items))))


def _walk(
    rng: np.random.Generator,
    length: int,
    successors: np.ndarray,
    weights: np.ndarray,
    favourites: np.ndarray,
    popularity: np.ndarray,
) -> np.ndarray:
    n_items = len(successors)
    if len(favourites) == 0:
        favourites = np.arange(n_items)
    fav_p = popularity[favourites] / popularity[favourites].sum()
    current = rng.choice(favourites, p=fav_p)
    sequence = [current]
    seen = {current}
    while len(sequence) < length:
        for _ in range(10):
            if rng.random() < 0.75:
                candidate = successors[current, rng.choice(3, p=weights)]
            else:
                candidate = rng.choice(favourites, p=fav_p)
            if candidate not in seen:
                break
        else:
            candidate = rng.integers(n_items)
            if candidate in seen:
                continue
        sequence.append(candidate)
        seen.add(candidate)
        current = candidate
    return np.asarray(sequence, dtype=np.int64)


def _title(rng: np.random.Generator, category: int) -> str:
    name, nouns = _CATEGORIES[category]
    adjective = _ADJECTIVES[rng.integers(len(_ADJECTIVES))]
    noun = nouns[rng.integers(len(nouns))]
    size = rng.choice(["1 oz", "2 oz", "3.4 fl oz", "50 ml", "Travel Size", "Set of 3"])
    return f"{adjective} {noun} &amp; {name} Essentials, {size}"


# Item images: one colour and one shape per category, so an image encoder sees the
# same grouping that the titles carry. Per-item jitter comes from the item's row
# number, not from the generator's random stream, so the tables stay the same
# whether images are drawn or not.
_CATEGORY_COLOURS = [
    (228, 26, 28),
    (55, 126, 184),
    (77, 175, 74),
    (152, 78, 163),
    (255, 127, 0),
    (166, 86, 40),
    (247, 129, 191),
    (90, 90, 90),
]
_CATEGORY_SHAPES = [
    "circle",
    "square",
    "triangle",
    "diamond",
    "wide_bar",
    "tall_bar",
    "ring",
    "cross",
]


def write_images(metadata: pd.DataFrame, folder: Path, size: int = 64) -> int:
    """Draw PNG images of the synthetic items into `folder`.

    Every item gets `<parent_asin>.png`; every fourth item also gets a second view
    `<parent_asin>_1.png`, and every tenth item (rows 9, 19, ...) gets none, so the
    fallback to text has something to do.

    Args:
        metadata: item_metadata of `generate` (parent_asin, categories).
        folder: output folder, created when missing.
        size: image side in pixels.

    Returns:
        The number of files written.
    """
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in _CATEGORIES]
    n_files = 0
    for row, (asin, categories) in enumerate(
        zip(metadata["parent_asin"], metadata["categories"])
    ):
        if row % 10 == 9:
            continue
        category = next(i for i, name in enumerate(names) if f"'{name}'" in categories)
        views = 2 if row % 4 == 0 else 1
        for view in range(views):
            image = Image.new("RGB", (size, size), (250, 248, 240))
            draw = ImageDraw.Draw(image)
            _draw_shape(draw, category, row + 7 * view, size)
            suffix = f"_{view}" if view else ""
            image.save(folder / f"{asin}{suffix}.png", optimize=False)
            n_files += 1
    logger.info("drew %d item images into %s", n_files, folder)
    return n_files


def _draw_shape(draw: object, category: int, jitter: int, size: int) -> None:
    colour = tuple(
        min(255, max(0, c + (jitter * 13) % 41 - 20))
        for c in _CATEGORY_COLOURS[category]
    )
    margin = size // 8 + jitter % (size // 8)
    box = (margin, margin, size - margin, size - margin)
    left, top, right, bottom = box
    middle = size // 2
    shape = _CATEGORY_SHAPES[category]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(middle, top), (right, bottom), (left, bottom)], fill=colour)
    elif shape == "diamond":
        points = [(middle, top), (right, middle), (middle, bottom), (left, middle)]
        draw.polygon(points, fill=colour)
    elif shape == "wide_bar":
        draw.rectangle((left, middle - size // 8, right, middle + size // 8), colour)
    elif shape == "tall_bar":
        draw.rectangle((middle - size // 8, top, middle + size // 8, bottom), colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, size // 10))
    else:
        draw.rectangle((left, middle - size // 12, right, middle + size // 12), colour)
        draw.rectangle((middle - size // 12, top, middle + size // 12, bottom), colour)


# The challenge's files had 868,218 users, 77,833 items and 2.54 M train rows, and
# about 70 % of the users had 2 train rows.
CHALLENGE_USERS = 868_218
CHALLENGE_ITEMS = 77_833
_SHARE_OF_TWO = 0.7
# 2 + a geometric count with this p has mean 2 + 1 / p = 5.08, so the mean train
# length is 0.7 * 2 + 0.3 * 5.08 = 2.93 and 868,218 users have 2.54 M rows.
_LONGER_P = 0.3243
_MAX_LENGTH = 400


def challenge_lengths(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Purchases per user, held-out test item included, shaped like the challenge.

    70 % of users get 2 train purchases; the rest get 2 plus a geometric count
    (mean 5.08 in all). The test item adds 1 to each. Capped at 400.

    Returns:
        (n_users,) int64 lengths, each at least 3.
    """
    train = np.full(n_users, 2, dtype=np.int64)
    longer = rng.random(n_users) >= _SHARE_OF_TWO
    train[longer] = 2 + rng.geometric(_LONGER_P, size=int(longer.sum()))
    return np.minimum(train, _MAX_LENGTH - 1) + 1


def _generate_challenge_shape(n_users: int, n_items: int, seed: int) -> RawTables:
    """Generate the synthetic shop with the challenge's lengths, without user loops.

    The catalog, successor graph and walk follow the same rules as the small
    shape (see the module docstring), drawn in whole arrays at a time.
    """
    rng = np.random.default_rng(seed)
    n_categories = len(_CATEGORIES)
    category = rng.integers(0, n_categories, size=n_items)
    popularity = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 0.8)
    by_category = [np.flatnonzero(category == c) for c in range(n_categories)]
    successors = _successors(rng, category, by_category)

    lengths = np.minimum(challenge_lengths(rng, n_users), n_items)
    favourite = rng.integers(n_categories, size=n_users)
    walker = _Walker(rng, successors, by_category, popularity)
    item_col = walker.walk(lengths, favourite)
    user_col = np.repeat(np.arange(n_users), lengths)

    # Timestamps: a start per user plus the running sum of its gaps.
    gaps = rng.integers(0, 86_400 * 30, size=len(item_col))
    gaps[rng.random(len(item_col)) < 0.05] = 0
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    running = np.cumsum(gaps)
    before_user = running[first] - gaps[first]
    start = rng.integers(1_300_000_000, 1_400_000_000, size=n_users)
    stamp_col = start[user_col] + running - before_user[user_col]

    is_last = np.r_[user_col[1:] != user_col[:-1], True]
    train = pd.DataFrame(
        {
            "user_id": user_col[~is_last],
            "item_id": item_col[~is_last],
            "rating": rng.integers(1, 6, size=int((~is_last).sum())).astype(float),
            "timestamp": stamp_col[~is_last],
        }
    )
    test = pd.DataFrame({"user_id": np.arange(n_users), "predictions": 0})
    metadata = _metadata(rng, category)
    logger.info(
        "generated %d users, %d items, %d train rows (challenge shape)",
        n_users,
        n_items,
        len(train),
    )
    asins = metadata["parent_asin"].tolist()
    return RawTables(train, test, metadata, dict(zip(asins, range(n_items))))


def _successors(
    rng: np.random.Generator, category: np.ndarray, by_category: list[np.ndarray]
) -> np.ndarray:
    """Three distinct successors per item: from its category, 25 % from anywhere."""
    n_items = len(category)
    successors = rng.integers(n_items, size=(n_items, 3))
    local = rng.random(n_items) >= 0.25
    for members in by_category:
        rows = members[local[members]]
        if len(members) >= 4 and len(rows):
            successors[rows] = members[rng.integers(len(members), size=(len(rows), 3))]

    # Redraw any row with a repeat or a self-loop from the whole catalog.
    def invalid(block: np.ndarray, items: np.ndarray) -> np.ndarray:
        repeats = (block[:, 0] == block[:, 1]) | (block[:, 0] == block[:, 2])
        repeats |= block[:, 1] == block[:, 2]
        return repeats | (block == items[:, None]).any(axis=1)

    bad = np.flatnonzero(invalid(successors, np.arange(n_items)))
    while len(bad):
        successors[bad] = rng.integers(n_items, size=(len(bad), 3))
        bad = bad[invalid(successors[bad], bad)]
    return successors


class _Walker:
    """Draws every user's walk over the successor graph, one position at a time."""

    def __init__(
        self,
        rng: np.random.Generator,
        successors: np.ndarray,
        by_category: list[np.ndarray],
        popularity: np.ndarray,
    ) -> None:
        self.rng = rng
        self.successors = successors
        self.n_items = len(successors)
        self.by_category = [
            members if len(members) else np.arange(self.n_items)
            for members in by_category
        ]
        self.cumulative = []
        for members in self.by_category:
            weights = np.cumsum(popularity[members])
            self.cumulative.append(weights / weights[-1])
        self.successor_cumulative = np.cumsum([0.6, 0.25, 0.15])

    def popular_in(self, categories: np.ndarray) -> np.ndarray:
        """Draw a popularity-weighted item of each given category."""
        out = np.empty(len(categories), dtype=np.int64)
        for c, members in enumerate(self.by_category):
            rows = np.flatnonzero(categories == c)
            draws = self.rng.random(len(rows))
            picks = np.searchsorted(self.cumulative[c], draws, side="right")
            out[rows] = members[np.minimum(picks, len(members) - 1)]
        return out

    def walk(self, lengths: np.ndarray, favourite: np.ndarray) -> np.ndarray:
        """Draw all walks, concatenated in user order; no walk repeats an item.

        Each next item is one of the current item's successors with probability
        0.75, else a popular item of the user's favourite category. A repeat is
        redrawn up to 10 times, then replaced by uniform draws until it is new.
        """
        first = np.r_[0, np.cumsum(lengths)[:-1]]
        items = np.empty(int(lengths.sum()), dtype=np.int64)
        current = self.popular_in(favourite)
        items[first] = current
        by_length = np.argsort(-lengths, kind="stable")
        for position in range(1, int(lengths.max())):
            active = by_length[: int((lengths > position).sum())]
            chosen = np.empty(len(active), dtype=np.int64)
            todo = np.arange(len(active))
            for _ in range(10):
                users = active[todo]
                candidates = self._next(current[users], favourite[users])
                chosen[todo] = candidates
                todo = todo[self._seen(items, first[users], position, candidates)]
                if len(todo) == 0:
                    break
            while len(todo):
                users = active[todo]
                candidates = self.rng.integers(self.n_items, size=len(users))
                chosen[todo] = candidates
                todo = todo[self._seen(items, first[users], position, candidates)]
            items[first[active] + position] = chosen
            current[active] = chosen
        return items

    def _next(self, current: np.ndarray, favourite: np.ndarray) -> np.ndarray:
        follow = self.rng.random(len(current)) < 0.75
        slot = np.searchsorted(
            self.successor_cumulative, self.rng.random(len(current)), side="right"
        )
        out = self.successors[current, np.minimum(slot, 2)]
        out[~follow] = self.popular_in(favourite[~follow])
        return out

    @staticmethod
    def _seen(
        items: np.ndarray, first: np.ndarray, position: int, candidates: np.ndarray
    ) -> np.ndarray:
        """Check whether each candidate is already among its walk's first items."""
        earlier = items[first[:, None] + np.arange(position)]
        return (earlier == candidates[:, None]).any(axis=1)


def _metadata(rng: np.random.Generator, category: np.ndarray) -> pd.DataFrame:
    """item_metadata rows for items of the given categories."""
    n_items = len(category)
    return pd.DataFrame(
        {
            "parent_asin": [f"S{item:09d}" for item in range(n_items)],
            "title": [_title(rng, c) for c in category],
            "store": [_BRANDS[i] for i in rng.integers(len(_BRANDS), size=n_items)],
            "categories": [f"'Beauty', '{_CATEGORIES[c][0]}'" for c in category],
            "price": np.round(rng.uniform(2, 80, size=n_items), 2),
        }
    )
