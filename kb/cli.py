"""The `kb` command: a thin shell that parses, calls kb's functions and renders the result.

Results go to stdout (tables, or JSON with --json); progress and errors go to stderr, so
`kb ... --json | jq` always sees clean JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

import kb
from kb.answer.types import (
    Answer,
    AnswerEvent,
    Done,
    Refused,
    Replace,
    Sources,
    Token,
    evidence_label,
    label,
)
from kb.app import ENTRY_POINTS, KnowledgeBase, SearchFilter
from kb.config import Settings, get_settings
from kb.errors import ConfigError, InputError, KbError
from kb.jsonl import read_objects, validate_history

app = typer.Typer(
    help="kb: ask your company's documents, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_state: dict[str, Any] = {"verbose": False}

CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", "-c", help="Collection to use (default: KB_COLLECTION)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
FolderOpt = Annotated[
    list[str] | None,
    typer.Option("--folder", help="Only documents under this folder (as ingested); repeatable."),
]
FileTypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", help="Only documents of this file type, e.g. pdf; repeatable."),
]


AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Read as this user: only documents their groups may read (kb users)."
    ),
]


class UserError(KbError):
    """A problem with the command line itself; shown as one line, never as a traceback."""


def _version(value: bool) -> None:
    if value:
        out.print(f"kb {kb.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print kb's version and exit."
        ),
    ] = False,
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # Parsers log per-element chatter at WARNING; the user sees kb's one line per file.
        for noisy in ("unstructured", "pdfminer", "chromadb", "httpx", "pypdf"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into one clear line and exit code 2."""
    try:
        yield
    except (KbError, FileNotFoundError) as exc:
        if _state["verbose"]:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug, not a user error: one line unless --verbose
        if _state["verbose"]:
            err.print_exception()
        else:
            err.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                "(run with --verbose for details)",
                highlight=False,
            )
        raise typer.Exit(3) from None


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"KB_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid setting ({problems}); see .env.example") from None


@contextmanager
def _knowledge_base(as_user: str | None = None) -> Iterator[KnowledgeBase]:
    """The facade for this command, closed (models freed) when the command ends; with
    `as_user`, limited to what that user may read."""
    with KnowledgeBase(_settings(), via="cli") as knowledge:
        yield knowledge if as_user is None else knowledge.as_user(as_user)


def _one_line(text: str) -> str:
    """A file name or message as one printable line: control characters (a newline in a file
    name) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- ingest ------------------------------------------------------------------------------


class _IngestProgress:
    """Renders pipeline events as a Rich progress bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.chunks = 0
        self.started = time.perf_counter()

    def __call__(self, event) -> None:
        if event.kind == "waiting":
            err.print("waiting for another ingestion of this knowledge base to finish…")
            return
        if event.kind == "planned":
            self.task = self.progress.add_task(
                "ingesting",
                total=max(event.total_bytes, 1),
                files=0,
                total_files=event.total_files,
                chunks=0,
                rate=0.0,
            )
        elif self.task is None:
            return
        elif event.kind == "chunks":
            self.chunks += event.chunks
            elapsed = max(time.perf_counter() - self.started, 1e-6)
            self.progress.update(self.task, chunks=self.chunks, rate=self.chunks / elapsed)
        elif event.kind == "file":
            if event.status == "failed" and err.is_terminal:
                # Shown as it happens on a terminal; otherwise listed once at the end.
                line = f" {_one_line(event.source)}: {_one_line(event.error)}"
                self.progress.console.print(Text.assemble(("failed", "red"), line))
            if event.status in ("added", "updated", "renamed", "failed") and event.bytes:
                fields = self.progress.tasks[0].fields
                self.progress.update(self.task, advance=event.bytes, files=fields["files"] + 1)
        elif event.kind == "done":
            self.progress.update(self.task, completed=self.progress.tasks[0].total)


def _summary_table(summary) -> Table:
    table = Table(title="ingestion summary", show_header=True)
    for column in (
        "added",
        "updated",
        "unchanged",
        "removed",
        "renamed",
        "failed",
        "chunks",
        "seconds",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.added),
        str(summary.updated),
        str(summary.unchanged),
        str(summary.removed),
        str(summary.renamed),
        str(len(summary.failed)),
        str(summary.chunks),
        f"{summary.seconds:.1f}",
    )
    return table


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: CollectionOpt = None,
    prune: Annotated[
        bool, typer.Option("--prune/--no-prune", help="Remove files gone from the folder.")
    ] = True,
    groups: Annotated[
        str | None,
        typer.Option(
            "--groups",
            help="Who may read these folders, e.g. hr,managers ('everyone': all users); "
            "remembered; a .kbaccess file in a subfolder overrides it there.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add documents to the knowledge base; re-running touches only what changed."""
    with _errors(), _knowledge_base() as knowledge:
        for path in paths:
            if not path.exists():
                raise UserError(f"{path}: no such file or folder")
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            TextColumn("{task.fields[chunks]} chunks"),
            TextColumn("{task.fields[rate]:.1f} chunks/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=as_json,
            disable=not err.is_terminal and not _state["verbose"],
        )
        with progress:
            summary = knowledge.ingest(
                paths,
                collection=collection,
                prune=prune,
                progress=_IngestProgress(progress),
                groups=groups,
            )
    if as_json:
        _print_json(summary.to_json())
    else:
        if not err.is_terminal:
            for failure in summary.failed:
                err.print(
                    f"failed {_one_line(failure.path)}: {_one_line(failure.error)}",
                    highlight=False,
                    markup=False,
                )
        if summary.repaired:
            err.print(f"repaired an interrupted ingestion: {summary.repaired}", highlight=False)
        out.print(_summary_table(summary))
    raise typer.Exit(1 if summary.failed else 0)


# --- status / forget ---------------------------------------------------------------------


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Show collections, files, chunks, size on disk, models and the last ingestion."""
    with _errors(), _knowledge_base() as knowledge:
        info = knowledge.status()
    if as_json:
        _print_json(info)
        return
    out.print(f"knowledge base: [bold]{info['home']}[/] ({_human_bytes(info['size_bytes'])})")
    out.print(f"vector store:   {info['chroma']}")
    out.print(
        f"models:         embedding {info['models']['embedding']}, answers {info['models']['llm']}"
    )
    out.print(f"refusal checks: {info['models']['refusal_checks']}", highlight=False)
    table = Table(show_header=True)
    for column in ("collection", "files", "chunks", "embedding", "last ingestion"):
        table.add_column(column)
    for col in info["collections"]:
        last = col["last_ingestion"]
        when = (
            "-"
            if last is None
            else datetime.fromtimestamp(last["finished_at"]).strftime("%Y-%m-%d %H:%M")
        )
        table.add_row(
            col["name"], str(col["files"]), str(col["chunks"]), col["embed_model"] or "-", when
        )
    if not info["collections"]:
        out.print("empty: run `kb ingest PATH` to add documents")
    else:
        out.print(table)


@app.command()
def doctor(
    as_json: JsonOpt = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Re-hash the bundled chat model.")
    ] = True,
) -> None:
    """Check the machine, the models, the stores and the model server; recommend a model size."""
    with _errors(), _knowledge_base() as knowledge:
        report = knowledge.doctor(verify)
    if as_json:
        _print_json(report)
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        table = Table(show_header=True)
        for column in ("check", "", "detail"):
            table.add_column(column)
        for check in report["checks"]:
            status = check["status"]
            table.add_row(check["name"], f"[{style[status]}]{status}[/]", check["detail"])
        out.print(table)
        out.print(f"[bold]verdict:[/] {report['recommendation']['verdict']}", highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)


@app.command()
def forget(
    path: Annotated[str, typer.Argument(help="A file as ingested (relative or full path).")],
    collection: CollectionOpt = None,
) -> None:
    """Remove one file's chunks from the knowledge base."""
    with _errors(), _knowledge_base() as knowledge:
        name = collection or knowledge.settings.collection
        removed = knowledge.forget(path, name)
        if not removed:
            raise UserError(f"{path}: not in collection {name!r} (see `kb status`)")
    for source in removed:
        out.print(f"removed {source}")


# --- search / ask / chat -----------------------------------------------------------------


def _read_batch(path: Path) -> Iterator[dict]:
    """JSON lines with a `question` (optional `history`), validated with file:line errors."""
    for number, item in read_objects(path):
        if not str(item.get("question", "")).strip():
            raise InputError(f"{path}:{number}: each line needs a non-empty 'question' field")
        item["history"] = validate_history(item.get("history"), f"{path}:{number}")
        yield item


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="Results to show.")] = 5,
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="JSON lines with a 'question' field.")
    ] = None,
    folder: FolderOpt = None,
    file_type: FileTypeOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Show the chunks retrieved for a query, with scores (no model needed)."""
    with _errors(), _knowledge_base(as_user) as knowledge:
        if (query is None) == (input_file is None):
            raise UserError("give a QUERY or --input FILE (one of them)")
        filters = SearchFilter.of(folder or [], file_type or [])
        if input_file is not None:
            for item in _read_batch(input_file):
                result = knowledge.search(item["question"], k, collection, filters)
                _print_json(result.to_json())
            return
        result = knowledge.search(query, k, collection, filters)
    if as_json:
        _print_json(result.to_json())
        return
    if not result.hits:
        out.print("no results")
    for i, hit in enumerate(result.hits, start=1):
        where = hit.source + (f", page {hit.page}" if hit.page else "")
        section = hit.metadata.get("section")
        out.print(
            f"[bold]{i}.[/] [cyan]{where}[/] score {hit.score:.3f}"
            + (f"  [dim]{section}[/]" if section else ""),
            highlight=False,
        )
        out.print("   " + " ".join(hit.text.split())[:400], highlight=False)


def _where(source) -> str:
    return source.source + (f", p. {source.page}" if source.page else "")


class _AnswerPrinter:
    """Renders a streamed answer's events on the terminal: tokens as they come, then the
    sources. A terminal cannot take text back, so a replacement starts a new line."""

    def __init__(self) -> None:
        self.line_open = False
        self.refused = False

    def __call__(self, event: AnswerEvent) -> None:
        if isinstance(event, Token):
            out.print(event.text, end="", highlight=False, markup=False)
            self.line_open = True
        elif isinstance(event, Replace):
            self._end_line()
            out.print(event.text, end="", highlight=False, markup=False)
            self.line_open = True
        elif isinstance(event, Refused):
            self.refused = True
            if self.line_open:
                self._end_line()
                if event.evidence:
                    out.print(f"[yellow]{evidence_label(event.reason, event.language)}[/]")
                    for quote in event.evidence:
                        out.print(f"  “{quote.text}” ({quote.source})", highlight=False)
            out.print(event.message, end="", highlight=False, markup=False)
            self.line_open = True
        elif isinstance(event, Sources):
            self._end_line()
            self._sources(event)

    def _end_line(self) -> None:
        if self.line_open:
            out.print()
            self.line_open = False

    def _sources(self, event: Sources) -> None:
        if self.refused:
            if event.also_retrieved:
                out.print(f"\n[dim]{label('nearest', event.language)}[/]")
                for src in event.also_retrieved[:3]:
                    out.print(f"  - {_where(src)}: {src.snippet[:160]}", highlight=False)
            return
        out.print(f"\n[bold]{label('sources', event.language)}[/]")
        for src in event.cited:
            section = f" — {src.section}" if src.section else ""
            out.print(f"  [{src.n}] [cyan]{_where(src)}[/]{section}", highlight=False)
            out.print(f"      “{src.snippet}”", highlight=False)


def _stream_answer(events: Iterator[AnswerEvent]) -> Answer:
    """Print an answer as it streams, then its sources; return the final Answer."""
    printer = _AnswerPrinter()
    final = None
    for event in events:
        printer(event)
        if isinstance(event, Done):
            final = event.answer
    assert final is not None
    return final


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="Your question.")] = None,
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="JSON lines with 'question' (and optional 'history')."),
    ] = None,
    folder: FolderOpt = None,
    file_type: FileTypeOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Answer a question from the knowledge base, citing its sources."""
    with _errors(), _knowledge_base(as_user) as knowledge:
        if (question is None) == (input_file is None):
            raise UserError("give a QUESTION or --input FILE (one of them)")
        filters = SearchFilter.of(folder or [], file_type or [])
        knowledge.chain(collection)  # load the models before the first question
        if input_file is not None:
            for item in _read_batch(input_file):
                answer = knowledge.ask(item["question"], item["history"], collection, filters)
                _print_json(answer.to_json())
            return
        if as_json:
            _print_json(knowledge.ask(question, None, collection, filters).to_json())
            return
        _stream_answer(knowledge.stream(question, None, collection, filters))


@app.command()
def chat(collection: CollectionOpt = None, as_user: AsOpt = None) -> None:
    """Talk with the knowledge base; follow-up questions use the conversation."""
    with _errors(), _knowledge_base(as_user) as knowledge:
        knowledge.chain(collection)
        err.print("[dim]Ask a question. /new starts a new conversation, /exit or Ctrl-D quits.[/]")
        history: list[dict] = []
        while True:
            try:
                question = input("\n> ").strip()
            except (EOFError, KeyboardInterrupt):
                out.print()
                return
            if not question:
                continue
            if question in ("/exit", "/quit"):
                return
            if question == "/new":
                history = []
                err.print("[dim]new conversation[/]")
                continue
            answer = _stream_answer(knowledge.stream(question, history, collection))
            history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer.answer},
            ]


# --- users, audit, feedback ----------------------------------------------------------------

users_app = typer.Typer(help="Accounts: who may sign in, and which groups they read.")
app.add_typer(users_app, name="users")


def _password(given: str | None, confirm: bool = True) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        # A script pipes the password in (one line), so it never shows in the process list.
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise UserError("no password given: use --password or type it when asked")
        return line
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)


GroupsOpt = Annotated[
    str | None, typer.Option("--groups", help="Comma-separated groups, e.g. hr,managers.")
]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    groups: GroupsOpt = None,
    admin: Annotated[bool, typer.Option("--admin", help="May read everything.")] = False,
    upload: Annotated[
        bool, typer.Option("--upload", help="May add documents into their groups' folders.")
    ] = False,
    password: Annotated[
        str | None, typer.Option("--password", help="Else asked for (or read from stdin).")
    ] = None,
) -> None:
    """Create an account."""
    with _errors(), _knowledge_base() as knowledge:
        user = knowledge.users.add(
            name, _password(password), (groups or "").split(","), admin=admin, upload=upload
        )
    out.print(f"added {user.name} (groups: {', '.join(user.groups) or '-'})", highlight=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Delete an account, its API keys, page sessions and conversations."""
    with _errors(), _knowledge_base() as knowledge:
        knowledge.users.remove(name)
    out.print(f"removed {name}", highlight=False)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password: Annotated[str | None, typer.Option("--password")] = None,
) -> None:
    """Set an account's password (lifts a sign-in lockout, ends the user's page sessions)."""
    with _errors(), _knowledge_base() as knowledge:
        knowledge.users.set_password(name, _password(password))
    out.print(f"password of {name} changed", highlight=False)


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """The accounts, their groups and rights."""
    with _errors(), _knowledge_base() as knowledge:
        users = knowledge.users.list()
    if as_json:
        _print_json([u.to_json() for u in users])
        return
    table = Table("user", "groups", "rights")
    for u in users:
        rights = ", ".join(r for r, on in (("admin", u.admin), ("upload", u.upload)) if on)
        table.add_row(u.name, ", ".join(u.groups) or "-", rights or "-")
    out.print(table)


@users_app.command("groups")
def users_groups(
    name: Annotated[str, typer.Argument(help="User name.")],
    groups: GroupsOpt = None,
    admin: Annotated[bool | None, typer.Option("--admin/--no-admin")] = None,
    upload: Annotated[bool | None, typer.Option("--upload/--no-upload")] = None,
) -> None:
    """Show an account's groups, or change them (--groups replaces them) and its rights."""
    with _errors(), _knowledge_base() as knowledge:
        wanted = None if groups is None else groups.split(",")
        if wanted is None and admin is None and upload is None:
            user = knowledge.users.get_required(name)
        else:
            user = knowledge.users.set_groups(name, wanted, admin, upload)
    rights = [r for r, on in (("admin", user.admin), ("upload", user.upload)) if on]
    out.print(
        f"{user.name}: groups {', '.join(user.groups) or '-'}"
        + (f"; {', '.join(rights)}" if rights else ""),
        highlight=False,
    )


@users_app.command("key")
def users_key(
    name: Annotated[str, typer.Argument(help="User name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke all the user's keys.")] = False,
) -> None:
    """Create an API key for `kb serve` that reads as this user (shown once)."""
    with _errors(), _knowledge_base() as knowledge:
        if revoke:
            n = knowledge.users.revoke_api_keys(name)
            out.print(f"revoked {n} key(s) of {name}", highlight=False)
            return
        key = knowledge.users.new_api_key(name)
    out.print(key, highlight=False, markup=False)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since {text!r}: use a date like 2025-01-31 or 2025-01-31T09:00"
        ) from None
    return when if when.tzinfo else when.astimezone()


@app.command()
def audit(
    source: Annotated[
        str | None, typer.Option("--source", help="Only questions that retrieved this document.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's questions.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date (ISO).")] = None,
    via: Annotated[
        str | None,
        typer.Option(
            "--via",
            help=f"Only questions from this entry point: {', '.join(ENTRY_POINTS)}.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who asked what, when, through which entry point, and which documents were retrieved
    and cited."""
    with _errors():
        if via is not None and via not in ENTRY_POINTS:
            raise UserError(f"--via {via!r}: use one of {', '.join(ENTRY_POINTS)}")
        with _knowledge_base() as knowledge:
            entries = list(knowledge.audit.read(source, user, _since(since), via))
    if as_json:
        for entry in entries:
            out.print(json.dumps(entry, ensure_ascii=False), highlight=False, markup=False)
        return
    table = Table("when", "user", "via", "action", "question", "cited", "retrieved")
    for e in entries:
        table.add_row(
            e["at"],
            e.get("user") or "-",
            e.get("via") or "-",  # entries written before kb recorded it
            e["action"],
            _one_line(e["question"])[:80],
            ", ".join(e.get("cited") or []) or "-",
            ", ".join(e.get("retrieved") or []) or "-",
        )
    out.print(table)


feedback_app = typer.Typer(help="What readers said about answers.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    output: Annotated[Path, typer.Argument(help="The kb eval question file to write (.jsonl).")],
    since: Annotated[str | None, typer.Option("--since", help="From this date (ISO).")] = None,
) -> None:
    """Write readers' rated questions as a `kb eval` question file."""
    with _errors(), _knowledge_base() as knowledge:
        start = _since(since)
        lines = knowledge.export_feedback(start.timestamp() if start else 0.0)
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    err.print(f"wrote {len(lines)} question(s) to {output}", highlight=False)


# --- ui ----------------------------------------------------------------------------------


@app.command()
def ui(
    host: Annotated[str | None, typer.Option(help="Address to bind (default KB_UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KB_UI_PORT).")] = None,
) -> None:
    """Start the web page where employees ask questions (Streamlit)."""
    from kb.ui.launch import launch

    with _errors():
        settings = _settings()
        code = launch(settings, host or settings.ui_host, port or settings.ui_port)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default KB_SERVE_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KB_SERVE_PORT).")] = None,
) -> None:
    """Serve the knowledge base as an OpenAI-compatible API (chat, search, uploads)."""
    from kb.server.run import serve as run_server

    with _errors():
        settings = _settings()
        err.print(
            f"kb serve on http://{host or settings.serve_host}:{port or settings.serve_port} "
            "(OpenAPI at /docs)",
            highlight=False,
        )
        run_server(
            settings, host or settings.serve_host, port or settings.serve_port, _state["verbose"]
        )


# --- eval --------------------------------------------------------------------------------


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--k {text!r}: give numbers separated by commas, e.g. 1,5,10") from None
    if not ks or ks[0] < 1 or ks[-1] > 100:
        raise UserError(f"--k {text!r}: each k must be between 1 and 100")
    return ks


@app.command(name="eval")
def evaluate(
    qa_files: Annotated[
        list[Path] | None,
        typer.Argument(help="Question files (JSON lines, ../shared/eval format)."),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs for hit@k, e.g. 1,5,10.")] = "1,5,10",
    answers: Annotated[
        bool, typer.Option("--answers", help="Also generate and score answers.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="A fixed random sample of N per file.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the report.")] = None,
    ingest_docs: Annotated[
        bool, typer.Option("--ingest-docs", help="Build a throwaway knowledge base from docs/.")
    ] = False,
    distractors: Annotated[
        list[Path] | None, typer.Option("--distractors", help="Extra folders for --ingest-docs.")
    ] = None,
    compare: Annotated[
        list[Path] | None,
        typer.Option("--compare", help="Compare two summary.json files (give it twice)."),
    ] = None,
    rewrite: Annotated[
        bool,
        typer.Option(
            "--rewrite/--no-rewrite",
            help="Rewrite follow-ups with their history by the chat model, as answering does "
            "(--no-rewrite joins them to the earlier questions; no chat model is loaded).",
        ),
    ] = True,
    collection: CollectionOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Measure retrieval (and answers) on question sets; writes JSON, Markdown and a chart."""
    from kb.eval import report, runner

    if compare:
        # `--compare A.json B.json`: Typer binds B.json to the positional files.
        compare = [*compare, *(qa_files or [])]
        with _errors():
            if len(compare) != 2:
                raise UserError("--compare needs exactly two summary.json files")
            a, b = (json.loads(p.read_text(encoding="utf-8")) for p in compare)
            rows = report.compare(a, b)
        out.print(report.compare_table(rows))
        return
    with _errors():
        if not qa_files:
            raise UserError("give one or more question files (or --compare A.json B.json)")
        settings = _settings()
        request = runner.EvalRequest(
            qa_files=list(qa_files),
            ks=_parse_ks(k),
            answers=answers,
            limit=limit,
            ingest_docs=ingest_docs,
            distractors=list(distractors or []),
            collection=collection,
            rewrite=rewrite,
            as_user=as_user,
        )
        if as_user is not None and ingest_docs:
            raise UserError("--as reads an existing knowledge base: leave out --ingest-docs")
        destination = out_dir or Path("eval-results") / time.strftime("%Y%m%d-%H%M%S")
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        with progress:
            task = progress.add_task("evaluating", total=None)
            outcome = runner.evaluate(
                settings,
                request,
                on_start=lambda n: progress.update(task, total=n),
                on_record=lambda _: progress.advance(task),
            )
        if outcome.skipped:
            err.print(
                f"skipped {len(outcome.skipped)} question(s) with empty text: "
                + ", ".join(outcome.skipped)
            )
        paths = report.write_report(outcome.summary, outcome.records, destination, "kb eval")
    if outcome.interrupted:
        err.print(
            f"[yellow]interrupted: {len(outcome.records)} of {outcome.questions} questions "
            "measured; partial results written[/]"
        )
    out.print(report.render_markdown(outcome.summary, "kb eval"), markup=False, highlight=False)
    for name, path in paths.items():
        err.print(f"{name}: {path}", highlight=False)
