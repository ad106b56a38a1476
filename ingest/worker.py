"""Parse files in a separate process, with a time limit and a memory limit per file.

A parser (unstructured, pdfium, lxml) can spin for minutes on a pathological file or allocate
gigabytes on a ZIP bomb; inside the ingesting process that would hang the run or take the
machine's memory with it. So each file is parsed and split in a worker process
(`python -m kb.ingest.worker`):
- a file that takes longer than `KB_PARSE_TIMEOUT_S` is abandoned and its worker killed; the
  next file starts a fresh one;
- while it parses a file, the worker's address space may grow by at most `KB_PARSE_MEMORY_MB`
  beyond what it held before (RLIMIT_AS), so an allocation past that fails inside the worker
  (a MemoryError, reported for that file) instead of exhausting the machine;
- a crash of the parser (a segfault in a C library) costs that one file, not the run.

The worker is a plain subprocess speaking length-prefixed pickles over its stdin and stdout,
not a multiprocessing pool: multiprocessing's spawn re-imports the caller's main script in the
child, which breaks any script that calls `KnowledgeBase.ingest` without a `__main__` guard.
One worker per process serves every ingestion and is reused across them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from kb.config import Settings
from kb.ingest.load import LoadError, load
from kb.ingest.split import Chunk, split_document

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")

# --- framing -------------------------------------------------------------------------------


def _send(out: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(payload)) + payload)
    out.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        piece = stream.read(n - len(data))
        if not piece:
            return None
        data += piece
    return data


# --- inside the worker ---------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    # A worker orphaned by a SIGKILLed `kb ingest` must not parse on: Linux sends it SIGKILL
    # when the thread that started it ends (prctl PR_SET_PDEATHSIG; Python has no wrapper).
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(0)


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _parse(
    count,
    path: str,
    fmt: str,
    chunk_tokens: int,
    overlap_tokens: int,
    max_chunks: int,
    max_unpacked_bytes: int,
    memory_mb: int,
) -> tuple[str, list[Chunk]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        doc = load(Path(path), fmt, max_unpacked_bytes)
        chunks = split_document(doc, count, chunk_tokens, overlap_tokens, max_chunks)
    except MemoryError:
        raise LoadError(
            f"parsing needed more than {memory_mb} MB of memory (KB_PARSE_MEMORY_MB)"
        ) from None
    except RecursionError:
        raise LoadError(f"cannot parse {fmt.upper()} file: structure nested too deeply") from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if not chunks:
        raise LoadError("no text found in the file")
    return doc.title, chunks


_PARTITIONERS = {
    "docx": "docx",
    "pptx": "pptx",
    "xlsx": "xlsx",
    "eml": "email",
    "md": "md",
    "html": "html",
    "text": "text",
}
_warm: set[str] = set()


def _prepare(fmt: str) -> None:
    """Import what parsing `fmt` needs, once per worker, before the file's clock starts:
    unstructured and its spaCy pipeline take 10-20 s to load on a busy machine, which is no
    fault of the first file that needs them."""
    module = _PARTITIONERS.get(fmt)
    if module is None or fmt in _warm:
        return
    import importlib

    if not _warm:
        from unstructured.partition.text import partition_text

        partition_text(text="Warm-up text for the parser. It has two sentences.")
    importlib.import_module(f"unstructured.partition.{module}")
    _warm.add(fmt)


def _serve(embed_model: str, parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a parser prints goes to stderr, never into the replies
    try:
        from kb.models.embeddings import load_token_counter

        count = load_token_counter(Settings(embed_model=embed_model))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the cause
        _send(replies, ("error", f"cannot start the parser ({type(exc).__name__}: {exc})"))
        return
    _send(replies, ("ready", None))
    while (header := _read_exact(requests, _HEADER.size)) is not None:
        body = _read_exact(requests, _HEADER.unpack(header)[0])
        if body is None:
            return
        request = pickle.loads(body)
        try:
            _prepare(request[1])
        except Exception:
            log.debug("warm-up failed", exc_info=True)
        _send(replies, ("started", None))
        try:
            reply: tuple[str, Any] = ("ok", _parse(count, *request))
        except LoadError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - any parser bug costs this one file only
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            reply = ("error", f"cannot parse the file ({type(exc).__name__}: {reason})")
        _send(replies, reply)


# --- in the ingesting process --------------------------------------------------------------


class ParserPool:
    """Parses and splits one file at a time in a worker process, within the settings' limits."""

    def __init__(self, embed_model: str) -> None:
        self.embed_model = embed_model
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._buffer = b""
        self._ready = False

    def start(self) -> None:
        """Start the worker now, from the calling thread (it lives as long as that thread)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "kb.ingest.worker", self.embed_model, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if log.isEnabledFor(logging.DEBUG) else subprocess.DEVNULL,
        )
        self._ready = False
        self._buffer = b""

    def _receive(self, deadline: float) -> tuple[str, Any] | None:
        """The worker's next reply, or None when the deadline passes first. Bytes read past
        that reply stay in the buffer for the next call (a "started" and its result can
        arrive in one read)."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()

        def fill(size: int) -> bool:
            while len(self._buffer) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    return False
                piece = os.read(fd, 1 << 16)
                if not piece:
                    raise EOFError
                self._buffer += piece
            return True

        if not fill(_HEADER.size):
            return None
        size = _HEADER.unpack(self._buffer[: _HEADER.size])[0]
        if not fill(_HEADER.size + size):
            return None
        payload = self._buffer[_HEADER.size : _HEADER.size + size]
        self._buffer = self._buffer[_HEADER.size + size :]
        return pickle.loads(payload)

    def _stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        with contextlib.suppress(OSError):
            proc.kill()
        code = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        return code

    def parse(self, path: Path, fmt: str, s: Settings) -> tuple[str, list[Chunk]]:
        """(title, chunks) of the file, split as `s` says; LoadError with the reason shown to
        the user."""
        request = (
            str(path),
            fmt,
            s.chunk_tokens,
            s.chunk_overlap_tokens,
            s.max_file_chunks,
            int(s.max_unpacked_mb * 2**20),
            s.parse_memory_mb,
        )
        with self._lock:
            self._ensure_started()
            assert self._proc is not None and self._proc.stdin is not None
            try:
                if not self._ready:
                    # Starting takes seconds (Python, the tokenizer); not the file's fault.
                    reply = self._receive(time.monotonic() + max(s.parse_timeout_s, 120))
                    if reply is None or reply[0] != "ready":
                        self._stop()
                        reason = reply[1] if reply else "it did not start in time"
                        raise LoadError(f"the parser could not start: {reason}")
                    self._ready = True
                _send(self._proc.stdin, request)
                # The file's clock starts once the worker has loaded what its format needs.
                reply = self._receive(time.monotonic() + max(s.parse_timeout_s, 300))
                if reply is not None and reply[0] == "started":
                    reply = self._receive(time.monotonic() + s.parse_timeout_s)
            except (EOFError, BrokenPipeError):
                code = self._stop()
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                raise LoadError(
                    f"the parser crashed on this file ({how}; out of memory past "
                    f"KB_PARSE_MEMORY_MB={s.parse_memory_mb}, or a damaged file)"
                ) from None
            if reply is None:
                self._stop()
                raise LoadError(
                    f"parsing took longer than {s.parse_timeout_s:g} s (KB_PARSE_TIMEOUT_S): "
                    "the file is too large or malformed"
                )
        status, value = reply
        if status != "ok":
            raise LoadError(str(value))
        return value

    def close(self) -> None:
        with self._lock:
            self._stop()


_pools: dict[str, ParserPool] = {}
_pools_lock = threading.Lock()


def parser_for(settings: Settings) -> ParserPool:
    """The process-wide parser for this embedding model's tokens (the per-file limits travel
    with each file)."""
    with _pools_lock:
        pool = _pools.get(settings.embed_model)
        if pool is None:
            pool = _pools[settings.embed_model] = ParserPool(settings.embed_model)
        return pool


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
