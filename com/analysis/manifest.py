"""Manifestations: the distinct ways a test fails. Its failures grouped by normalised error signature (the
test-results view's `signatures`, made by `com.model.text.signature`: error type and first message line with
numbers, ids, paths and timings masked), groups of one category merged when their signatures mean the same thing (embedding similarity, through a function
passed in: texts -> unit vectors), each with count, share, first/last seen, an example and a category.

No model is imported here: the caller passes `embed` (com's embedder in the CLI, the packaged MiniLM in
tests); without it, groups are exact signatures only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from com.analysis.flaky import ERROR, FAILED, iso
from com.model.result import ResultColumns

CATEGORIES = ("timeout", "element_not_found", "network", "timing_order", "resource_environment", "other")
NO_MESSAGE = "(no error message)"
DEFAULT_THRESHOLD = 0.80  # cosine of MiniLM vectors: "Timeout >N s" ~ "Timeout after N s waiting" is 0.88

Embed = Callable[[list[str]], np.ndarray]

# First match wins: an element wait that timed out is an element problem, a connection timeout a network one.
_CATEGORY_RULES = (
    ("element_not_found", re.compile(
        r"selector|locator|no such element|element (?:is )?not (?:found|visible|attached|interactable)|"
        r"stale ?element|NoSuchElement|ElementNotInteractable|ElementClickIntercepted|waiting for (?:element|selector)|"
        r"Page\.\w+: Timeout|Locator\.\w+|getBy\w+|unable to locate|not attached to the DOM", re.I)),
    ("network", re.compile(
        r"connection|ECONNRESET|ECONNREFUSED|ECONNABORTED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|socket|network|"
        r"\bDNS\b|getaddrinfo|name or service not known|temporary failure in name resolution|broken pipe|"
        r"remote end closed|\bHTTP(?:Error)? ?5\d\d\b|\b50[234]\b (?:Bad Gateway|Service Unavailable|Gateway)|"
        r"SSL|host unreachable|Errno (?:104|111|110|113)|MaxRetryError|ProtocolError|ReadTimeout|ConnectTimeout", re.I)),
    ("timing_order", re.compile(
        r"\btook\b.*\b(?:budget|limit|expected|max)|\belapsed\b|too slow|slower than|\bduration\b.*[<>]|"
        r"out of order|wrong order|\border\b.*\bexpected\b|expected .*\border\b|race condition|\bbefore\b.*\bafter\b|"
        r"not yet (?:ready|available|visible)|still (?:running|pending)|eventually|clock|\bsleep\b", re.I)),
    ("timeout", re.compile(r"time ?out|timed out|deadline exceeded|TimeoutError|took too long", re.I)),
    ("resource_environment", re.compile(
        r"MemoryError|out of memory|\bOOM\b|No space left|disk (?:full|quota)|permission denied|EACCES|ENOSPC|EMFILE|"
        r"too many open files|resource (?:temporarily )?unavailable|address already in use|port \S+ (?:is )?in use|"
        r"database is locked|\blocked\b|deadlock|environment variable|KeyError: '[A-Z][A-Z0-9_]+'|"
        r"ModuleNotFoundError|No module named|command not found|killed|SIGKILL|segmentation fault|"
        r"display|headless|GPU|CUDA|license", re.I)),
)


def categorise(text: str) -> str:
    """timeout, element_not_found, network, timing_order, resource_environment or other."""
    for name, pattern in _CATEGORY_RULES:
        if pattern.search(text):
            return name
    return "other"


@dataclass
class Manifestation:
    signature: str                  # the group's most frequent signature
    category: str
    count: int
    share: float                    # of the test's failures
    first_seen_us: int
    last_seen_us: int
    example: str                    # a raw message when examples were given, else the signature
    signatures: list[str] = field(default_factory=list)  # every signature merged into the group

    def to_json(self) -> dict:
        return {"signature": self.signature, "category": self.category, "count": self.count,
                "share": round(self.share, 4), "first_seen": iso(self.first_seen_us),
                "last_seen": iso(self.last_seen_us), "example": self.example, "signatures": self.signatures}


def _merge(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    """Union-find: the group root of each of n items."""
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(a) for a in range(n)]


def manifestations(cols: ResultColumns, tests: Iterable[str] | None = None, *, embed: Embed | None = None,
                   threshold: float = DEFAULT_THRESHOLD, examples: dict[int, str] | None = None,
                   rows: np.ndarray | None = None) -> dict[str, list[Manifestation]]:
    """Manifestations of each test's failures (failed or error rows), largest group first.

    tests: test ids to describe (default: every test with a failure); rows: a mask or indices to restrict
    the rows (a window, or only the failures detection counted as flaky); examples: signature index -> a
    raw message (else the signature is the example); embed: texts -> unit vectors, to merge signatures of
    one category whose cosine is at least `threshold` (single linkage)."""
    failing = (cols.status == FAILED) | (cols.status == ERROR)
    if rows is not None:
        keep = np.zeros(len(cols), bool)
        keep[rows] = True
        failing &= keep
    wanted = None
    if tests is not None:
        index = {t: i for i, t in enumerate(cols.tests)}
        wanted = sorted({index[t] for t in tests if t in index})
        failing &= np.isin(cols.test, np.array(wanted, np.int64))
    idx = np.flatnonzero(failing)
    out: dict[str, list[Manifestation]] = {cols.tests[i]: [] for i in (wanted or [])}
    if idx.shape[0] == 0:
        return out
    n_sig = len(cols.signatures)
    sig = cols.signature[idx].astype(np.int64)
    sig = np.where(sig >= 0, sig, n_sig)  # no message: one extra "signature"
    key = cols.test[idx].astype(np.int64) * (n_sig + 1) + sig
    order = np.argsort(key, kind="stable")
    ks = key[order]
    ts = cols.ts_us[idx][order]
    st = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[st, ks.shape[0]])
    first = np.minimum.reduceat(ts, st)
    last = np.maximum.reduceat(ts, st)
    g_test = ks[st] // (n_sig + 1)
    g_sig = ks[st] % (n_sig + 1)
    examples = examples or {}

    def text_of(s: int) -> str:
        return NO_MESSAGE if s == n_sig else cols.signatures[s]

    def category_of(s: int) -> str:
        return "other" if s == n_sig else categorise(text_of(s) + "\n" + examples.get(s, ""))

    categories = {s: category_of(s) for s in set(g_sig.tolist())}
    # Embed once, for every signature that shares a test and a category with another one.
    tstart = np.flatnonzero(np.r_[True, g_test[1:] != g_test[:-1]])
    tend = np.r_[tstart[1:], g_test.shape[0]]
    to_embed: set[int] = set()
    if embed is not None:
        for a, b in zip(tstart.tolist(), tend.tolist()):
            if b - a > 1:
                cats = [categories[s] for s in g_sig[a:b].tolist()]
                for s, c in zip(g_sig[a:b].tolist(), cats):
                    if cats.count(c) > 1 and s != n_sig:
                        to_embed.add(s)
    vectors = {}
    if to_embed:
        ordered = sorted(to_embed)
        mat = np.asarray(embed([text_of(s) for s in ordered]), dtype=np.float32)
        vectors = {s: mat[i] for i, s in enumerate(ordered)}

    for a, b in zip(tstart.tolist(), tend.tolist()):
        sigs = g_sig[a:b].tolist()
        pairs = []
        for i in range(len(sigs)):
            for k in range(i + 1, len(sigs)):
                si, sk = sigs[i], sigs[k]
                if (categories[si] == categories[sk] and si in vectors and sk in vectors
                        and float(vectors[si] @ vectors[sk]) >= threshold):
                    pairs.append((i, k))
        roots = _merge(len(sigs), pairs)
        total = int(counts[a:b].sum())
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(roots):
            groups.setdefault(r, []).append(i)
        found = []
        for members in groups.values():
            members.sort(key=lambda i: (-int(counts[a + i]), text_of(sigs[i])))
            lead = sigs[members[0]]
            count = int(sum(int(counts[a + i]) for i in members))
            found.append(Manifestation(
                text_of(lead), categories[lead], count, count / total,
                int(min(int(first[a + i]) for i in members)), int(max(int(last[a + i]) for i in members)),
                examples.get(lead, text_of(lead)), [text_of(sigs[i]) for i in members],
            ))
        found.sort(key=lambda m: (-m.count, m.signature))
        out[cols.tests[int(g_test[a])]] = found
    return out
