"""The command bar's text helpers: a command seen twice (as typed, for names; lower-cased, for matching),
numbers in any common notation, names (bare or quoted) after a keyword, and the stop words that are never names.
Used by apps.commands.extract; no Django, no database."""
from __future__ import annotations

import math
import re

_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "twenty": 20, "fifty": 50, "hundred": 100}
DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
NUMBER = (rf"(?:(?:{DEC}\s*(?:x|×|\*)\s*)?10\s*(?:\^|\*\*)\s*[-+−]?\s*\d+"  # 1x10^-5, 10^-5, 5*10**-5
          rf"|{DEC}(?:\s*e\s*[-+−]?\s*\d+)?)")  # 1e-5, 1E-05, 0.00001, 3
SEP = r"\s*(?:=|:|of|to|at|is|as)?\s*"  # "lr 1e-5", "lr=1e-5", "learning rate of 1e-5"
NAME = r"(?:\"([^\"]{1,200})\"|'([^']{1,200})'|“([^”]{1,200})”|([A-Za-z0-9_@][\w./:@+-]{0,199}))"

STOP = frozenset("""
a an the my our your this that it its me us please now then and or with without on using use used for to from of
in at by as into model models dataset datasets data training train trained run runs version versions new latest
last newest current lr learning rate epoch epochs batch size method base status progress job jobs alias aliases
proxy chain temperature max tokens fallback timeout review reviews reviewer reviewers generated generate scenarios
examples include exclude categories category generators only all some suffix named called together local locally
gpu cpu lora full dpo kto scratch canary deployment previous prior back deploy is what how check show
setup configure config set up auto-coder autocoder reasoning steps step seed overlap rating labels name
""".split())

class T:
    """The command twice: as typed (names keep their case) and lower-cased (for matching), same length."""

    def __init__(self, text: str):
        self.orig = text
        low = text.lower()
        self.low = low if len(low) == len(text) else text

    def find(self, pattern: str, start: int = 0) -> re.Match | None:
        return re.compile(pattern).search(self.low, start)

    def has(self, pattern: str) -> bool:
        return self.find(pattern) is not None

    def name(self, m: re.Match, group_base: int) -> str:
        """The name captured by a NAME group starting at `group_base`, in its original case."""
        for g in range(group_base, group_base + 4):
            if m.group(g) is not None:
                value = self.orig[m.start(g):m.end(g)]
                return value if g < group_base + 3 else value.rstrip(".,;:!?")
        return ""


def number(raw: str) -> float | None:
    """1e-5, 1E-05, 0.00001, 1x10^-5, 10^-5, 5*10**-5 -> a float (None for anything else)."""
    s = raw.lower().replace("−", "-").replace(" ", "")
    m = re.fullmatch(rf"(?:({DEC})(?:x|×|\*))?10(?:\^|\*\*)([-+]?\d+)", s)
    try:
        if m:
            return (float(m.group(1)) if m.group(1) else 1.0) * 10.0 ** int(m.group(2))
        value = float(s)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def clean(text: str) -> str:
    text = " ".join(text.replace("\u00a0", " ").split())
    if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”":
        text = text[1:-1].strip()
    text = text.rstrip(".!?").strip()

    def word(m):
        return str(_WORD_NUMBERS[m.group(1).lower()])

    pattern = r"\b(" + "|".join(_WORD_NUMBERS) + r")\b(?=\s+(?:epochs?|steps?|scenarios?|examples?|reviewers?))"
    return re.sub(pattern, word, text, flags=re.IGNORECASE)


def name_after(t: T, prefix: str, *, stop=STOP, require=None) -> str | None:
    """The first name after `prefix` (a regex) that is not a stop word (and matches `require`, when given)."""
    for m in re.finditer(prefix + r"\s+" + NAME, t.low):
        groups = re.compile(prefix).groups
        value = t.name(m, groups + 1)
        if not value or value.lower() in stop or number(value) is not None:
            continue
        if require and not re.search(require, value):
            continue
        return value
    return None


def num(t: T, pattern: str) -> float | None:
    m = t.find(pattern)
    return number(m.group("n")) if m else None


def version_number(t: T, name: str) -> int | None:
    m = t.find(re.escape(name.lower()) + r"(?:\s+|\s*@\s*|\s*:\s*)(?:v|version\s*|#)(\d+)\b")
    return int(m.group(1)) if m else None


def reason(t: T, p: dict) -> None:
    m = t.find(r"\b(?:because|reason\s*:?|why\s*:)\s+(.+)$")
    if m:
        p["reason"] = t.orig[m.start(1):m.end(1)].strip()[:2000]


def slug_after(t: T, prefix: str, stop=STOP) -> str | None:
    for m in re.finditer(prefix + r"\s+([a-z0-9][a-z0-9_-]{0,99})\b", t.low):
        value = m.group(1)
        if value not in stop:
            return value
    return None
