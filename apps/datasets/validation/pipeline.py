"""The validation pipeline: stream examples from a reader, check them in batches, report every problem.

Used by `validate_dataset`, `dataset_import` (which stores the annotated examples it is handed in
batches) and the benchmark. Memory: the file is streamed; what is kept per example is small and fixed
(a content hash, a MinHash signature, token counts) — never the text. Each Annotated example carries its
packed signature (`minhash`), stored with its row so that a later version need not compute it again.

`validate_examples` also takes `Carried` examples (a derived version's examples whose content is unchanged
from a validated version): the figures stored with them (token counts, whether the content checks raised
anything, the MinHash signature) are reused when their stored content hash is the hash of the content checked
now; everything that depends on the other examples (duplicates, near duplicates, split leakage), the
structural rules and the statistics are computed as for any example, so the report and statistics are those
of a validation from scratch of the same examples.
"""
from __future__ import annotations

import hashlib
import itertools
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from apps.datasets.formats import FatalFormatError, Report, read_path
from apps.datasets.validation.content import check_content
from apps.datasets.validation.dedup import (
    NUM_PERM, IntTable, NearDuplicateIndex, example_text, pack, signatures, unpack,
)
from apps.datasets.validation.tokens import COUNTING
from apps.datasets.validation.toolcheck import CODES as TOOL_CODES, ToolCallCheck

BATCH = 1024
MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 50
ROLES = ("system", "user", "assistant", "tool")
# Issue codes that depend on the other examples of the version (or on the tokenizer's context length, or on the
# tool registry: toolcheck.py): always recomputed. Every other code on an example comes from its content checks.
SET_CODES = frozenset({"duplicate", "near_duplicate", "split_leakage", "too_long"}) | TOOL_CODES
# Every code this module raises (content checks, duplicates, tokens, the version's size, a missing tokenizer):
# a report whose counts hold no other code had no finding from the structural rules (formats/rows.py).
VALIDATION_CODES = SET_CODES | frozenset({"empty_turn", "short_answer", "unanswered_tool_call", "garbled_text",
                                          "pii_email", "pii_phone",
                                          "secret", "no_examples", "too_few_examples", "few_examples",
                                          "no_tokenizer"})


def content_hash(ex: dict) -> str:
    return hashlib.sha256(orjson.dumps([ex["messages"], ex.get("tools")], option=orjson.OPT_SORT_KEYS)).hexdigest()


def split_of(h: str, ratio: float) -> str:
    return "validation" if int(h[:8], 16) < ratio * 0x100000000 else "train"


@dataclass
class Annotated:
    index: int
    example: dict
    hash: str
    split: str
    tokens: int | None
    codes: set
    role_tokens: dict | None = None  # content tokens per role (None: not counted)
    source: int | None = None  # id of a stored example with this very content (its row may be copied)
    minhash: bytes | None = None  # its packed MinHash signature (dedup.pack)
    minhash_reused: bool = False  # True: it is the stored one of row `source` (a copy of that row keeps it)


@dataclass
class Carried:
    """An example carried into a new version with its content (messages, tools) unchanged from stored row
    `id`, with what was stored for it: `hash` (its stored content hash: the figures below are used only
    when it equals the hash of its content), `tokens` and `role_tokens` (counted with the same tokenizer;
    None: count them), `content_clean` (True: its content checks raised nothing, so they are skipped;
    False: run them), `structure_clean` (True: it is stored as the structural rules normalized it and they
    raised nothing on it for this target, so they are not run again), `signature` (its stored packed MinHash
    signature, dedup.pack; None or one of another kind: computed)."""
    example: dict
    id: int
    hash: str = ""
    tokens: int | None = None
    role_tokens: dict | None = None
    content_clean: bool = False
    structure_clean: bool = False
    signature: bytes | None = None


def issue_codes(stored: str) -> set[str]:
    """The codes of an Example's `issues` ("|a|b|")."""
    return {c for c in (stored or "").strip("|").split("|") if c}


@dataclass
class ValidationResult:
    format: str
    examples: int
    report: Report
    stats: dict = field(default_factory=dict)
    content_hash: str = ""

    def as_dict(self) -> dict:
        rep = self.report.as_dict()
        return {"format": self.format, "examples": self.examples, "errors": rep["errors"],
                "warnings": rep["warnings"], "counts": rep["counts"], "error_total": rep["error_total"],
                "warning_total": rep["warning_total"], "truncated": rep["truncated"]}


def _hist(values, bins=30) -> dict:
    if len(values) == 0:
        return {"edges": [], "counts": []}
    arr = np.frombuffer(values, dtype=np.int32) if isinstance(values, array) else np.asarray(values)
    counts, edges = np.histogram(arr, bins=min(bins, max(1, int(arr.max()) - int(arr.min()) + 1)))
    return {"edges": [round(float(e), 1) for e in edges], "counts": counts.tolist()}


def _quantiles(values) -> dict:
    if len(values) == 0:
        return {"mean": 0, "p50": 0, "p95": 0, "max": 0, "min": 0}
    arr = np.frombuffer(values, dtype=np.int32) if isinstance(values, array) else np.asarray(values)
    return {"mean": round(float(arr.mean()), 1), "p50": int(np.percentile(arr, 50)),
            "p95": int(np.percentile(arr, 95)), "max": int(arr.max()), "min": int(arr.min())}


def estimates(*, tokens: list[int] | int, context_length: int | None, epochs: int = 3,
              base_model_id: str | None = None) -> dict:
    """Training time (local) and cost (Together / OpenAI) for `epochs` epochs: see
    apps.training.services.estimates.dataset_estimates, the one place estimates are computed."""
    from apps.training.services.estimates import dataset_estimates

    return dataset_estimates(tokens=tokens, context_length=context_length, epochs=epochs,
                             base_model_id=base_model_id)


def count_lines(path: Path) -> int | None:
    if not Path(path).is_file():
        return None
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            n += chunk.count(b"\n")
    return n


class Validator:
    def __init__(self, *, target="local", structure_only=False, counter=None, split_ratio=0.1, epochs=3,
                 base_model_id=None):
        self.target = target
        self.structure_only = structure_only
        self.counter = counter
        self.split_ratio = split_ratio
        self.epochs = epochs
        self.base_model_id = base_model_id or (counter.name if counter else None)
        self.report = Report()
        self.n = 0
        self.exact = IntTable()
        self.near = NearDuplicateIndex()
        self.splits = bytearray()
        self.hasher = hashlib.sha256()
        self.tok = array("i")
        self.role_tok = {r: array("i") for r in ROLES}
        self.turns = array("i")
        self.categories: Counter = Counter()
        self.kinds: Counter = Counter()
        self.tool_calls: Counter = Counter()
        self.with_tools = 0
        self.dup_exact = self.dup_near = self.leakage = self.too_long = 0
        self.split_counts: Counter = Counter()
        self.lines: array = array("i")
        self.tool_check = ToolCallCheck()  # reads the tool registry once, at the first tool call
        self._pool = None

    def submit_tokens(self, batch: list[dict]):
        """Queue this batch's token counts on a second thread (the Rust tokenizer releases the GIL), so that
        they run while this thread parses the next batch and runs the content checks and MinHash."""
        if self.counter is None or self.structure_only:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-count")
        return self._pool.submit(self.counter.count, batch)

    def process(self, batch: list[dict], fut=None, carried: list | None = None) -> list[Annotated]:
        """Check one batch. `carried` (aligned with `batch`: a verified `Carried` or None per example): the
        stored token counts and MinHash signatures are used instead of computing them, and content checks that
        raised nothing before are not run again."""
        rep = self.report
        out = []
        counted = None  # positions in `batch` whose tokens the future counts (None: all of them)
        if fut is None:
            if carried is not None and self.counter is not None:
                counted = [k for k, c in enumerate(carried) if c is None or c.tokens is None or c.role_tokens is None]
                fut = self.submit_tokens([batch[k] for k in counted]) if counted else None
            else:
                fut = self.submit_tokens(batch)
        for k, ex in enumerate(batch):
            idx = self.n
            self.n += 1
            if self.structure_only:
                out.append(Annotated(idx, ex, "", "train", None, set()))
                continue
            c = carried[k] if carried is not None else None
            h = c.hash if c is not None else content_hash(ex)
            self.hasher.update(h.encode())
            split = split_of(h, self.split_ratio)
            codes = set() if c is not None and c.content_clean else check_content(ex, rep, index=idx)
            self.lines.append(ex.get("source_line") or 0)
            self.splits.append(split == "validation")
            out.append(Annotated(idx, ex, h, split, None, codes, source=c.id if c is not None else None))
        if self.structure_only:
            return out
        # exact duplicates: a 64-bit prefix of the content hash in a numpy hash table
        firsts = self.exact.lookup_insert(np.array([int(a.hash[:16], 16) for a in out], dtype=np.uint64),
                                          out[0].index) if out else []
        for a, first in zip(out, firsts):
            if first >= 0:
                a.codes.add("duplicate")
                self.dup_exact += 1
                rep.warn("duplicate", f"Exact duplicate of example {first + 1} (line {self.lines[first] or '?'}).",
                         line=a.example.get("source_line"), file=a.example.get("source_file") or None,
                         example=a.index)
        # near duplicates (a carried example's stored signature is used: the same as computing it)
        sigs = np.empty((len(out), NUM_PERM), dtype=np.uint32)
        todo = []
        for k, a in enumerate(out):
            stored = unpack(carried[k].signature) if carried is not None and carried[k] is not None else None
            if stored is None:
                todo.append(k)
            else:
                sigs[k] = stored
                a.minhash_reused = True
        if todo:
            sigs[todo] = signatures([example_text(out[k].example) for k in todo])
        for a, packed in zip(out, pack(sigs)):
            a.minhash = packed
        for a, hit in zip(out, self.near.add_batch(sigs)):
            if hit is None or "duplicate" in a.codes:
                continue
            _i, other, sim = hit
            if self.splits[other] != self.splits[a.index]:
                self.leakage += 1
                a.codes.add("split_leakage")
                self.report.warn("split_leakage", f"Near duplicate ({sim:.0%} similar) of example {other + 1} "
                                 f"(line {self.lines[other] or '?'}), which is in the other split: validation "
                                 "leaks into training.", line=a.example.get("source_line"),
                                 file=a.example.get("source_file") or None, example=a.index)
            else:
                self.dup_near += 1
                a.codes.add("near_duplicate")
                self.report.warn("near_duplicate", f"Near duplicate ({sim:.0%} similar) of example {other + 1} "
                                 f"(line {self.lines[other] or '?'}).", line=a.example.get("source_line"),
                                 file=a.example.get("source_file") or None, example=a.index)
        # tokens
        if self.counter is not None and not self.structure_only:
            counts = fut.result() if fut is not None else []
            if carried is not None:  # the stored counts where there are some, the counted ones elsewhere
                fresh = dict(zip(counted, counts))
                counts = [fresh[k] if k in fresh else (c.tokens, c.role_tokens) for k, c in enumerate(carried)]
            ctx = self.counter.context_length
            for a, (total, per_role) in zip(out, counts):
                a.tokens = total
                a.role_tokens = per_role
                self.tok.append(total)
                for r in ROLES:
                    self.role_tok[r].append(per_role.get(r, 0))
                if total > ctx:
                    self.too_long += 1
                    a.codes.add("too_long")
                    self.report.warn("too_long", f"{total} tokens with {self.counter.name}'s chat template: longer "
                                     f"than its {ctx}-token context; it will be truncated.",
                                     line=a.example.get("source_line"), file=a.example.get("source_file") or None,
                                     example=a.index)
        for a in out:
            ex = a.example
            self.turns.append(len(ex["messages"]))
            self.categories[ex.get("category") or "(none)"] += 1
            self.kinds[ex.get("meta", {}).get("kind", "chat")] += 1
            self.split_counts[a.split] += 1
            used = False
            for m in ex["messages"]:
                for c in m.get("tool_calls") or ():
                    self.tool_calls[c["function"]["name"]] += 1
                    used = True
            self.with_tools += used
            if used:
                a.codes |= self.tool_check.check(ex, rep, index=a.index)
        return out

    def finish(self, fmt: str) -> ValidationResult:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        rep = self.report
        n = self.n
        if n == 0 and not rep.has_errors:
            rep.error("no_examples", "The file holds no examples.", line=None)
        elif n < MIN_EXAMPLES:
            rep.add("too_few_examples", f"{n} example(s): at least {MIN_EXAMPLES} are needed "
                    f"({RECOMMENDED_EXAMPLES}-100 recommended).", line=None,
                    severity="error" if self.target == "openai" else "warning")
        elif n < RECOMMENDED_EXAMPLES and self.target == "openai":
            rep.warn("few_examples", f"{n} examples: OpenAI recommends at least {RECOMMENDED_EXAMPLES}.", line=None)
        stats = {"examples": n}
        if not self.structure_only:
            tok_list = np.frombuffer(self.tok, dtype=np.int32) if len(self.tok) else np.zeros(0, dtype=np.int32)
            ctx = self.counter.context_length if self.counter else None
            stats.update({
                "split_ratio": self.split_ratio,
                "splits": dict(self.split_counts),
                "turns": {**_quantiles(self.turns), "hist": _hist(self.turns, 20)},
                "categories": dict(self.categories.most_common()),
                "kinds": dict(self.kinds),
                "tools": {"examples_with_tool_calls": self.with_tools, "calls": dict(self.tool_calls.most_common())},
                "duplicates": {"exact": self.dup_exact, "near": self.dup_near, "split_leakage": self.leakage},
            })
            if self.counter is not None:
                stats["tokens"] = {
                    "base_model": self.counter.name, "context_length": ctx, "counting": COUNTING,
                    "total": int(tok_list.sum()), **_quantiles(self.tok), "hist": _hist(self.tok),
                    "per_role": {r: int(np.frombuffer(self.role_tok[r], dtype=np.int32).sum()) if len(self.role_tok[r]) else 0
                                 for r in ROLES},
                    "role_hist": {r: _hist(self.role_tok[r]) for r in ("user", "assistant") if len(self.role_tok[r])},
                    "too_long": self.too_long,
                }
                trained = int(np.minimum(tok_list, ctx).sum()) if len(tok_list) else 0
                stats["estimates"] = estimates(tokens=trained, context_length=ctx, epochs=self.epochs,
                                               base_model_id=self.base_model_id)
        return ValidationResult(format=fmt, examples=n, report=rep, stats=stats,
                                content_hash=self.hasher.hexdigest() if not self.structure_only else "")


def batched(it, n=BATCH):
    it = iter(it)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def validate_examples(examples, *, fmt: str, target="local", counter=None, split_ratio=0.1, epochs=3,
                      base_model_id=None, on_batch=None, recheck=True) -> ValidationResult:
    """Validate already-normalized examples (a fix's output): the structural rules again, then the rest.

    An item may be a `Carried` example: its stored figures are used when its stored hash is its content's
    hash and the structural rules leave that content as it is (they are not run at all on one marked
    `structure_clean`); else it is checked like any other example. Its Annotated has `source` = the stored
    row's id when its content is unchanged."""
    from apps.datasets.formats.rows import RowChecker

    v = Validator(target=target, counter=counter, split_ratio=split_ratio, epochs=epochs, base_model_id=base_model_id)

    def checked():
        checkers: dict = {}
        for item in examples:
            c = item if isinstance(item, Carried) else None
            ex = c.example if c is not None else item
            if c is not None and c.structure_clean and content_hash(ex) == c.hash:
                yield ex, c  # stored as normalized, and the rules found nothing: nothing to check again
                continue
            if recheck:
                f = ex.get("source_file") or ""
                chk = checkers.setdefault(f, RowChecker(v.report, target=target, file=f,
                                                        category=ex.get("category", "")))
                again = chk.check_example(ex)
                if again is None:
                    continue
                if c is not None and (again["messages"] != ex["messages"] or again["tools"] != ex.get("tools")):
                    c = None  # the rules normalize it differently now: a new example
                ex = again
            if c is not None:
                h = content_hash(ex)
                if h == c.hash:
                    c.example = ex
                else:  # figures stored for other content: recompute them all
                    c = Carried(ex, c.id, hash=h)
            yield ex, c

    for chunk in batched(checked()):
        exs = [ex for ex, _c in chunk]
        carried = [c for _ex, c in chunk]
        annotated = v.process(exs, carried=carried if any(c is not None for c in carried) else None)
        if on_batch is not None:
            on_batch(annotated)
    return v.finish(fmt)


def _emit(v: Validator, pending, on_batch, on_progress, total):
    chunk, fut = pending
    annotated = v.process(chunk, fut)
    if on_batch is not None:
        on_batch(annotated)
    if on_progress is not None:
        on_progress(v.n, total)


def validate_path(path, *, target="local", structure_only=False, counter=None, format=None, display=None,
                  columns=None, split_ratio=0.1, epochs=3, base_model_id=None, on_batch=None, on_progress=None,
                  category="") -> ValidationResult:
    """Validate a file/folder/zip; `on_batch(list[Annotated])` receives the checked examples in order.
    A file that cannot be read at all yields a result with its error (never raises for bad data)."""
    v = Validator(target=target, structure_only=structure_only, counter=counter, split_ratio=split_ratio,
                  epochs=epochs, base_model_id=base_model_id)
    total = count_lines(path) if on_progress else None
    fmt = format or "unknown"
    try:
        fmt, items = read_path(path, report=v.report, target=target, format=format, display=display,
                               columns=columns, category=category)
        if structure_only and on_batch is None:
            # nothing to hand on: just drain the reader (the rules run inside it)
            for _ in items:
                v.n += 1
                if on_progress is not None and v.n % BATCH == 0:
                    on_progress(v.n, total)
            items = ()
        pending = None  # one batch of look-ahead: its tokens are counted while the previous one is checked
        for chunk in batched(items):
            fut = v.submit_tokens(chunk)
            if pending is not None:
                _emit(v, pending, on_batch, on_progress, total)
            pending = (chunk, fut)
        if pending is not None:
            _emit(v, pending, on_batch, on_progress, total)
    except FatalFormatError as exc:
        v.report.error(exc.code, exc.message, line=exc.line, file=exc.file or display or Path(path).name)
    except OSError as exc:
        v.report.error("unreadable", f"Could not read {display or Path(path).name}: {exc.strerror or exc}")
    return v.finish(fmt)


__all__ = ["validate_path", "validate_examples", "Validator", "ValidationResult", "Annotated", "Carried", "content_hash",
           "split_of", "estimates", "issue_codes", "SET_CODES", "VALIDATION_CODES"]
