"""Column names, event vocabulary and value ranges of reelrank's input tables.

Everything the loaders validate against lives here so that the loaders, the synthetic
generator, the MovieLens adapter and docs/DATA.md agree on one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: Event names. The integer code of an event is its index in this tuple, so the order is
#: part of the on-disk contract of anything that stores codes: append, never reorder.
EVENT_TYPES: Final[tuple[str, ...]] = (
    "view",
    "like",
    "comment",
    "share",
    "favorite",
    "complete",
    "skip",
    "dislike",
)

#: Event code used where a row carries only an explicit ``weight``.
NO_EVENT: Final[int] = -1

#: Implicit-feedback weight of each event when a row has no explicit ``weight``.
#: Shares and favourites cost the user the most effort, so they say the most; skips and
#: dislikes are negative feedback.
DEFAULT_EVENT_WEIGHTS: Final[dict[str, float]] = {
    "view": 1.0,
    "like": 4.0,
    "comment": 4.0,
    "share": 6.0,
    "favorite": 5.0,
    "complete": 3.0,
    "skip": -1.0,
    "dislike": -4.0,
}

#: Inclusive range of ``watch_ratio``. Values above 1 are legal: short videos loop, and a
#: re-watch is a strong positive signal worth keeping rather than clipping.
WATCH_RATIO_MIN: Final[float] = 0.0
WATCH_RATIO_MAX: Final[float] = 1.5

#: Separator of tags inside the items' ``keywords`` column.
KEYWORD_SEP: Final[str] = "|"

# Interactions table.
USER_ID: Final = "user_id"
ITEM_ID: Final = "item_id"
EVENT: Final = "event"
WEIGHT: Final = "weight"
TIMESTAMP: Final = "timestamp"
WATCH_RATIO: Final = "watch_ratio"

# Items table.
CREATOR_ID: Final = "creator_id"
KEYWORDS: Final = "keywords"
TITLE: Final = "title"
PUBLISH_TS: Final = "publish_ts"
GROUP: Final = "group"

#: Columns every interactions file must have; at least one of INTERACTION_SIGNAL_COLUMNS too.
INTERACTION_REQUIRED: Final[tuple[str, ...]] = (USER_ID, ITEM_ID, TIMESTAMP)
INTERACTION_SIGNAL_COLUMNS: Final[tuple[str, ...]] = (EVENT, WEIGHT)
INTERACTION_OPTIONAL: Final[tuple[str, ...]] = (EVENT, WEIGHT, WATCH_RATIO)

#: Columns every items file must have; at least one of ITEM_TEXT_COLUMNS too.
ITEM_REQUIRED: Final[tuple[str, ...]] = (ITEM_ID, CREATOR_ID, PUBLISH_TS)
ITEM_TEXT_COLUMNS: Final[tuple[str, ...]] = (KEYWORDS, TITLE)
ITEM_OPTIONAL: Final[tuple[str, ...]] = (KEYWORDS, TITLE, GROUP)

#: File suffixes the loaders accept, mapped to the format they select.
SUFFIX_FORMATS: Final[Mapping[str, str]] = MappingProxyType(
    {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}
)


def event_code(name: str) -> int:
    """Return the integer code of an event name.

    Parameters
    ----------
    name
        One of :data:`EVENT_TYPES` (exact, lower case).

    Returns
    -------
    int
        Index of ``name`` in :data:`EVENT_TYPES`.

    Raises
    ------
    KeyError
        If ``name`` is not an event type.
    """
    try:
        return EVENT_TYPES.index(name)
    except ValueError:
        raise KeyError(f"unknown event type {name!r}; expected one of {EVENT_TYPES}") from None


def event_weight_table(event_weights: Mapping[str, float] | None = None) -> list[float]:
    """Weights indexed by event code, defaults overridden by ``event_weights``.

    Parameters
    ----------
    event_weights
        Partial mapping event name -> weight; events it omits keep their default.

    Returns
    -------
    list of float
        ``table[code]`` is the weight of ``EVENT_TYPES[code]``.

    Raises
    ------
    ValueError
        If ``event_weights`` names an unknown event; a typo there would otherwise silently
        leave the default in force.
    """
    merged = dict(DEFAULT_EVENT_WEIGHTS)
    if event_weights:
        unknown = sorted(set(event_weights) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) in event_weights: {unknown}")
        merged.update({k: float(v) for k, v in event_weights.items()})
    return [merged[name] for name in EVENT_TYPES]
