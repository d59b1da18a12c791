"""The web layer's caches: token-keyed pages, and the byte-bounded body memo."""

from __future__ import annotations

from engfeed.web.cache import SizedLRU


def test_sized_lru_is_bounded_by_bytes_not_only_entries() -> None:
    calls: list[str] = []

    def upper(s: str) -> str:
        calls.append(s)
        return s.upper()

    memo = SizedLRU(upper, max_bytes=1_000_000, max_entries=10_000)
    for i in range(50):
        memo(f"{i}:" + "x" * 100_000)  # ~200 KB of key and value each
    assert memo.bytes <= 1_000_000
    assert len(memo) <= 5
    memo("small")
    memo("small")
    assert calls.count("small") == 1


def test_sized_lru_never_keeps_a_value_larger_than_an_eighth_of_its_budget() -> None:
    memo = SizedLRU(str.upper, max_bytes=1_000_000)
    big = "y" * 200_000
    assert memo(big) == big.upper()
    assert len(memo) == 0 and memo.bytes == 0


def test_body_memo_of_the_page_renderer_is_sized() -> None:
    from engfeed.web import render

    assert isinstance(render._clean_body, SizedLRU)
