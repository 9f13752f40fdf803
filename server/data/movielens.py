"""Convert MovieLens 100K (``u.data`` + ``u.item``) into reelrank's items/interactions CSVs.

MovieLens is distributed under a licence that forbids redistribution, so nothing from it is
ever committed: the data set lives outside the repository (see :func:`movielens_path`) and
the converter writes its output wherever the caller asks.

Mapping choices (documented in docs/DATA.md):

* every rating is an implicit positive: ``event = like`` **and** ``weight = 1.0``, so the
  explicit weight (which wins over the event's default) makes all ratings count equally;
  the original 1-5 ``rating`` is kept as an extra column that the loaders ignore;
* ``keywords`` = genre names + lower-cased title words (year and English/French/German/
  Spanish articles dropped);
* ``creator_id`` = ``year:<release year>`` (``year:unknown`` when missing): MovieLens has no
  director or studio, and the release cohort is the only honest "who made it" proxy;
* ``publish_ts`` = release date at 00:00 UTC (``0`` when missing);
* ``group`` = ``classic`` (released before 1990) or ``recent``; ``""`` when unknown.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from server.data import schema as S
from server.data.loaders import write_table

#: Environment variable naming the directory that holds ``u.data`` and ``u.item``.
ENV_VAR: Final = "REELRANK_ML100K"

GENRES: Final[tuple[str, ...]] = (
    "unknown",
    "action",
    "adventure",
    "animation",
    "children's",
    "comedy",
    "crime",
    "documentary",
    "drama",
    "fantasy",
    "film-noir",
    "horror",
    "musical",
    "mystery",
    "romance",
    "sci-fi",
    "thriller",
    "war",
    "western",
)
CLASSIC_BEFORE_YEAR: Final = 1990
_STOP_WORDS: Final = frozenset(
    {
        "the",
        "a",
        "an",
        "of",
        "and",
        "in",
        "on",
        "to",
        "for",
        "la",
        "le",
        "les",
        "l",
        "el",
        "de",
        "du",
        "des",
        "il",
        "der",
        "die",
        "das",
    }
)
_YEAR_SUFFIX = re.compile(r"\s*\(\d{4}\)\s*$")
_WORD = re.compile(r"[^\W_]+")


def movielens_path() -> Path | None:
    """Directory of MovieLens 100K, or ``None`` when it is not available.

    ``$REELRANK_ML100K`` when set, else ``<repo>/../shared/data/ml-100k``. The directory
    counts as available only if it holds both ``u.data`` and ``u.item``.

    Returns
    -------
    Path or None
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
    else:
        repo = Path(__file__).resolve().parents[2]
        path = repo.parent / "shared" / "data" / "ml-100k"
    if (path / "u.data").is_file() and (path / "u.item").is_file():
        return path
    return None


def title_words(title: str) -> list[str]:
    """Lower-cased words of a MovieLens title, without the year, articles or 1-letter bits.

    >>> title_words("Shawshank Redemption, The (1994)")
    ['shawshank', 'redemption']
    """
    words = _WORD.findall(_YEAR_SUFFIX.sub("", title).lower())
    return [w for w in words if len(w) > 1 and w not in _STOP_WORDS]


def _release_ts(text: str) -> int | None:
    """``01-Jan-1995`` -> epoch seconds at 00:00 UTC; ``None`` when empty or malformed."""
    try:
        return calendar.timegm(datetime.strptime(text.strip(), "%d-%b-%Y").timetuple())
    except ValueError:
        return None


def _items_table(src: Path) -> pa.Table:
    # u.item is small (1,682 rows): a plain per-line parse is clearer than a CSV reader here,
    # and titles are not quoted, so a CSV reader's quote handling would only get in the way.
    ids, creators, keywords, titles, published, groups = [], [], [], [], [], []
    text = (src / "u.item").read_bytes().decode("latin-1")
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(GENRES):
            raise ValueError(f"{src / 'u.item'}: expected {5 + len(GENRES)} fields: {line!r}")
        item_id, title, release = fields[0], fields[1], fields[2]
        flags = fields[5:]
        ts = _release_ts(release)
        year = time.gmtime(ts).tm_year if ts is not None else None
        tags = [g for g, f in zip(GENRES, flags, strict=True) if f == "1" and g != "unknown"]
        # Item 267's title is the placeholder "unknown": it has no words worth indexing.
        for word in title_words(title) if title != "unknown" else []:
            if word not in tags:
                tags.append(word)
        ids.append(item_id)
        creators.append(f"year:{year}" if year is not None else "year:unknown")
        keywords.append(S.KEYWORD_SEP.join(tags))
        titles.append(title)
        published.append(ts if ts is not None else 0)
        groups.append("" if year is None else "classic" if year < CLASSIC_BEFORE_YEAR else "recent")
    return pa.table(
        {
            S.ITEM_ID: pa.array(ids, pa.string()),
            S.CREATOR_ID: pa.array(creators, pa.string()),
            S.KEYWORDS: pa.array(keywords, pa.string()),
            S.TITLE: pa.array(titles, pa.string()),
            S.PUBLISH_TS: pa.array(published, pa.int64()),
            S.GROUP: pa.array(groups, pa.string()),
        }
    )


def _interactions_table(src: Path) -> pa.Table:
    names = ["user", "item", "rating", "ts"]
    raw = pcsv.read_csv(
        src / "u.data",
        read_options=pcsv.ReadOptions(column_names=names),
        parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pcsv.ConvertOptions(
            column_types={
                "user": pa.string(),
                "item": pa.string(),
                "rating": pa.int8(),
                "ts": pa.int64(),
            }
        ),
    )
    n = raw.num_rows
    # Time order (ties by user, item) so that time-based splits are a slice, like synthetic.
    order = np.lexsort(
        (
            pc.cast(raw.column("item"), pa.int64()).to_numpy(),
            pc.cast(raw.column("user"), pa.int64()).to_numpy(),
            raw.column("ts").to_numpy(),
        )
    )
    raw = raw.take(pa.array(order))
    return pa.table(
        {
            S.USER_ID: raw.column("user"),
            S.ITEM_ID: raw.column("item"),
            S.EVENT: pa.array(["like"] * n, pa.string()),
            S.WEIGHT: pa.array(np.ones(n, np.float64)),
            S.TIMESTAMP: raw.column("ts"),
            "rating": raw.column("rating"),
        }
    )


def convert_movielens_100k(src_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/items.csv`` and ``out_dir/interactions.csv`` from MovieLens 100K.

    Parameters
    ----------
    src_dir
        Directory with ``u.data`` (tab-separated user, item, rating, timestamp) and ``u.item``
        (``|``-separated, latin-1).
    out_dir
        Output directory, created if missing. Must not be inside the repository if the
        result could be committed (licence: no redistribution).

    Returns
    -------
    dict
        ``n_items``, ``n_users``, ``n_interactions``, ``items_path``, ``interactions_path``,
        ``seconds``.

    Raises
    ------
    FileNotFoundError
        If ``u.data`` or ``u.item`` is missing.
    """
    t0 = time.perf_counter()
    src = Path(src_dir)
    for name in ("u.data", "u.item"):
        if not (src / name).is_file():
            raise FileNotFoundError(src / name)
    items = _items_table(src)
    interactions = _interactions_table(src)
    out = Path(out_dir)
    items_path = out / "items.csv"
    interactions_path = out / "interactions.csv"
    write_table(items, items_path)
    write_table(interactions, interactions_path)
    return {
        "n_items": items.num_rows,
        "n_users": len(pc.unique(interactions.column(S.USER_ID))),
        "n_interactions": interactions.num_rows,
        "items_path": str(items_path),
        "interactions_path": str(interactions_path),
        "seconds": round(time.perf_counter() - t0, 3),
    }
