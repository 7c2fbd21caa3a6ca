"""What reading one PDF may cost: time, inflated bytes, content bytes and characters.

pdfplumber reads PDFs through pdfminer, which inflates every stream whole
(`zlib.decompress`, LZW and run-length in pure Python, with no size limit) and
interprets content streams and builds an object per character in pure Python, with
no time limit. A few kilobytes of PDF can so inflate to gigabytes, or hold
megabytes of NULs or characters that take minutes and hundreds of MB to
interpret. pdfminer and pdfplumber offer no limits of their own, so this module
adds them at pdfminer's few choke points (installed once, on first use; a no-op
for pdfminer's other users in the process except the per-stream cap):

- every inflating filter stops at the document's remaining allowance of inflated
  bytes (`MAX_INFLATED_BYTES`; one stream at most that much outside a budget);
- content streams handed to the interpreter count against `MAX_CONTENT_BYTES`;
- every rendered character counts against `MAX_CHARS`;
- the parsers check the deadline every 4 KB they read.

Past a limit `DocumentOverBudget` is raised from inside pdfminer: the caller
answers the document as unreadable. The budget is per thread (prefetch reads
documents in parallel threads), set with `pdf_budget`.
"""

from __future__ import annotations

import functools
import threading
import time
import types
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from mailbot.core.errors import ExtractionError

__all__ = [
    "MAX_CHARS",
    "MAX_CONTENT_BYTES",
    "MAX_INFLATED_BYTES",
    "DocumentOverBudget",
    "PdfBudget",
    "check_deadline",
    "over_budget_in",
    "pdf_budget",
]

MAX_INFLATED_BYTES = 32 * 1024 * 1024
"""All streams of one PDF inflated (content, fonts, object streams). The corpus'
largest is 0.1 MB; embedded font programs are the large legitimate streams (a few
MB for a full CJK font)."""
MAX_CONTENT_BYTES = 1024 * 1024
"""Content-stream bytes interpreted per PDF: the corpus' largest text PDF has 23 KB.
pdfminer interprets ~0.4 MB/s of drawing operators (measured), so this bounds a
hostile stream to ~3 s, within the budget whatever the deadline says."""
MAX_CHARS = 50_000
"""Characters laid out per PDF: ten dense A4 pages (the corpus' most: 2 924). Each
costs pdfminer and pdfplumber ~0.5 KB and ~12 us (measured: 100 000 took 1.1 s and
55 MB)."""


class DocumentOverBudget(ExtractionError):
    """Reading the document would cost more time or memory than its budget."""


@dataclass
class PdfBudget:
    deadline: float
    """time.monotonic() past which reading stops."""
    max_inflated: int = MAX_INFLATED_BYTES
    max_content: int = MAX_CONTENT_BYTES
    max_chars: int = MAX_CHARS
    inflated: int = 0
    content: int = 0
    chars: int = 0

    def allowance(self) -> int:
        return self.max_inflated - self.inflated


_local = threading.local()


def _current() -> PdfBudget | None:
    return getattr(_local, "budget", None)


@contextmanager
def pdf_budget(
    timeout_s: float,
    *,
    max_inflated: int = MAX_INFLATED_BYTES,
    max_content: int = MAX_CONTENT_BYTES,
    max_chars: int = MAX_CHARS,
) -> Iterator[PdfBudget]:
    """Limits for the pdfminer work this thread does inside the block."""
    _install()
    budget = PdfBudget(time.monotonic() + timeout_s, max_inflated, max_content, max_chars)
    previous = _current()
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous


def over_budget_in(exc: BaseException) -> DocumentOverBudget | None:
    """The DocumentOverBudget inside what pdfplumber raised (it wraps pdfminer's errors)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, DocumentOverBudget):
            return seen
        inner = [a for a in seen.args if isinstance(a, BaseException)]
        seen = seen.__cause__ or seen.__context__ or (inner[0] if inner else None)
    return None


def check_deadline() -> None:
    budget = _current()
    if budget is not None and time.monotonic() > budget.deadline:
        raise DocumentOverBudget("reading the PDF ran out of its time budget")


def _charge_inflated(size: int) -> None:
    budget = _current()
    if budget is None:
        return
    budget.inflated += size
    if budget.inflated > budget.max_inflated:
        raise DocumentOverBudget(f"PDF streams inflate past {budget.max_inflated >> 20} MB")


def _allowance() -> int:
    budget = _current()
    return MAX_INFLATED_BYTES if budget is None else budget.allowance()


def _too_large() -> DocumentOverBudget:
    return DocumentOverBudget("a PDF stream inflates past the size limit")


def _inflate(data: bytes) -> bytes:
    """zlib.decompress that stops at the allowance. A corrupt stream gives what
    inflated before the damage (pdfminer's own recovery feeds the stream to zlib
    one byte at a time and concatenates: quadratic on a few MB)."""
    limit = _allowance()
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for start in range(0, len(data), 1 << 16):
            # max_length >= 1 here (0 would mean "no limit")
            out += inflater.decompress(data[start : start + (1 << 16)], limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large()
            if inflater.eof:
                break
    except zlib.error:
        pass
    _charge_inflated(len(out))
    return bytes(out)


def _lzw(data: bytes) -> bytes:
    from pdfminer.lzw import LZWDecoder

    limit = _allowance()
    out = bytearray()
    try:
        for chunk in LZWDecoder(BytesIO(data)).run():
            out += chunk
            if len(out) > limit:
                raise _too_large()
    except DocumentOverBudget:
        raise
    except Exception:  # a corrupt LZW stream: what decoded before the damage
        pass
    _charge_inflated(len(out))
    return bytes(out)


def _run_length(data: bytes) -> bytes:
    """RunLengthDecode (PDF 1.7, 7.4.5), written here to stop at the allowance:
    pdfminer's expands 2 bytes to 128 with no limit."""
    limit = _allowance()
    out = bytearray()
    i = 0
    while i < len(data):
        length = data[i]
        if length == 128:  # end of data
            break
        if length < 128:
            out += data[i + 1 : i + 2 + length]
            i += length + 2
        else:
            out += data[i + 1 : i + 2] * (257 - length)
            i += 2
        if len(out) > limit:
            raise _too_large()
    _charge_inflated(len(out))
    return bytes(out)


def _checking_deadline(fillbuf: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(fillbuf)
    def wrapped(self: Any) -> bool:
        check_deadline()
        return fillbuf(self)

    return wrapped


def _counting_content(fillfp: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(fillfp)
    def wrapped(self: Any) -> bool:
        opened = fillfp(self)
        budget = _current()
        if opened and budget is not None:
            with self.fp.getbuffer() as view:
                budget.content += view.nbytes
            if budget.content > budget.max_content:
                raise DocumentOverBudget(
                    f"PDF content streams larger than {budget.max_content >> 20} MB"
                )
        return opened

    return wrapped


def _counting_chars(render_char: Callable[..., float]) -> Callable[..., float]:
    @functools.wraps(render_char)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> float:
        budget = _current()
        if budget is not None:
            budget.chars += 1
            if budget.chars > budget.max_chars:
                raise DocumentOverBudget(f"PDF holds more than {budget.max_chars} characters")
        return render_char(self, *args, **kwargs)

    return wrapped


_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    """Put the limits into pdfminer (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from pdfminer import converter, pdfinterp, pdftypes, psparser

        # pdftypes calls zlib.decompress through its module global `zlib`;
        # everything else it uses from zlib stays as it is.
        shim = types.SimpleNamespace(
            decompress=_inflate, decompressobj=zlib.decompressobj, error=zlib.error
        )
        setattr(pdftypes, "zlib", shim)  # noqa: B010 (not exported: mypy would refuse)
        setattr(pdftypes, "lzwdecode", _lzw)  # noqa: B010
        setattr(pdftypes, "rldecode", _run_length)  # noqa: B010
        psparser.PSBaseParser.fillbuf = _checking_deadline(  # type: ignore[method-assign]
            psparser.PSBaseParser.fillbuf
        )
        content = pdfinterp.PDFContentParser
        content.fillbuf = _checking_deadline(content.fillbuf)  # type: ignore[method-assign]
        content.fillfp = _counting_content(content.fillfp)  # type: ignore[method-assign]
        analyzer = converter.PDFLayoutAnalyzer
        analyzer.render_char = _counting_chars(analyzer.render_char)  # type: ignore[method-assign]
        _installed = True
