"""Input data for reelrank: schema, validated loaders, synthetic catalogue, MovieLens adapter.

See docs/DATA.md for the table formats and what the loaders accept or reject.
"""

from server.data.loaders import (
    InputError,
    Interactions,
    Items,
    filter_unknown_items,
    load_interactions,
    load_items,
    write_table,
)
from server.data.schema import DEFAULT_EVENT_WEIGHTS, EVENT_TYPES

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "EVENT_TYPES",
    "InputError",
    "Interactions",
    "Items",
    "filter_unknown_items",
    "load_interactions",
    "load_items",
    "write_table",
]
