"""Who may read which documents: groups declared per folder, principals that hold groups.

Every chunk carries the groups allowed to read it (`groups` in its metadata, in Chroma and in
the keyword index). A principal (a signed-in user, an API key's owner, `kb ... --as USER`)
becomes a `SearchFilter` condition on that field, so each index applies it while it ranks:
never a post-filter of a top k, which could leave a reader with nothing while their own
documents exist, and would reveal through counts and scores how much was hidden.

Declarations, nearest wins:
- a `.kbaccess` file in the ingested folder (one or more group names, separated by commas,
  spaces or lines; `#` starts a comment);
- `kb ingest FOLDER --groups G1,G2`, remembered for that folder by the knowledge base;
- a `.kbaccess` file in a subfolder, for everything below it.

The group `everyone` is held by every principal. A document without any declaration carries
`UNDECLARED`, which readers hold only when `KB_DEFAULT_ACCESS=everyone`; deciding that when
reading rather than when writing means changing the setting needs no re-ingestion.

A single sign-on proxy may name the reader in a header (`trusted_proxy_user`): `kb serve` and
the page ask the same function whether to believe it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kb.errors import InputError
from kb.filters import folders_of

ACCESS_FILE = ".kbaccess"
EVERYONE = "everyone"
# Not a valid group name (names start with a letter or digit), so no declaration can hold it.
UNDECLARED = "~undeclared"
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def parse_groups(text: str | Iterable[str], where: str = "--groups") -> tuple[str, ...]:
    """Group names from "hr, managers" (or lines of an access file), lower-cased, in order,
    each once; a name that is not 1-63 letters, digits, '.', '_' or '-' is an InputError
    naming `where`."""
    if isinstance(text, str):
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        words = [w for line in lines for w in re.split(r"[,\s]+", line) if w]
    else:
        words = [w.strip() for w in text if w.strip()]
    groups: list[str] = []
    for word in words:
        if not _GROUP.match(word):
            raise InputError(
                f"{where}: {word!r} is not a group name (use 1-63 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit)"
            )
        if word.lower() not in groups:
            groups.append(word.lower())
    return tuple(groups)


def chunk_groups(groups: Iterable[str]) -> list[str]:
    """What a chunk's `groups` metadata holds for a file declared with `groups`."""
    return list(groups) or [UNDECLARED]


@dataclass(frozen=True)
class Principal:
    """Who is reading: a user's name, their groups, and their rights."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False  # reads everything, manages users, exports feedback
    upload: bool = False  # may add documents, into the folders of their own groups

    def readable(self, default_access: str) -> tuple[str, ...] | None:
        """The chunk groups this principal reads; None for everything (an administrator)."""
        if self.admin:
            return None
        extra = (EVERYONE,) + ((UNDECLARED,) if default_access == "everyone" else ())
        return tuple(dict.fromkeys((*self.groups, *extra)))

    def can_read(self, groups: Iterable[str], default_access: str) -> bool:
        """Whether a document declared with `groups` (empty: undeclared) is readable."""
        allowed = self.readable(default_access)
        return allowed is None or any(g in allowed for g in chunk_groups(groups))

    @property
    def upload_groups(self) -> tuple[str, ...]:
        """The groups whose folders this principal may upload into."""
        if not (self.upload or self.admin):
            return ()
        return self.groups or ((EVERYONE,) if self.admin else ())


@dataclass
class AccessResolver:
    """The groups declared for each file under one ingested folder (`root`): the nearest
    `.kbaccess`, else the folder's `--groups`, else its own `.kbaccess`, else none."""

    root: Path
    root_groups: tuple[str, ...] | None = None  # from --groups (given or remembered)
    _cache: dict[str, tuple[str, ...] | None] = field(default_factory=dict)

    def _declared(self, folder: str) -> tuple[str, ...] | None:
        if folder not in self._cache:
            path = self.root / folder / ACCESS_FILE if folder != "." else self.root / ACCESS_FILE
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                self._cache[folder] = None
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: cannot read it ({exc})") from None
            else:
                self._cache[folder] = parse_groups(text, str(path))
        return self._cache[folder]

    def groups_for(self, source: str) -> tuple[str, ...]:
        """The declared groups of the file at `source` (relative to root); () when none."""
        folders = folders_of(source)
        for folder in reversed(folders[1:]):
            declared = self._declared(folder)
            if declared is not None:
                return declared
        if self.root_groups is not None:
            return self.root_groups
        return self._declared(".") or ()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    if text.lower() == "localhost":
        text = "127.0.0.1"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _same_host(address: str, proxy: str) -> bool:
    a, b = _address(address), _address(proxy)
    if a is None or b is None:  # not an address (a Unix socket's name): only the same text
        return bool(address.strip()) and address.strip() == proxy.strip()
    # Every loopback address is this machine; Streamlit reports none of them by address.
    return a == b or (a.is_loopback and b.is_loopback)


def trusted_proxy_user(
    header: str, proxies: str, headers: Iterable[tuple[str, str]], address: str | None
) -> str | None:
    """The user name a single sign-on proxy put in `header`, when the request came from one of
    `proxies` (comma-separated addresses); None when the header is not to be believed: the
    setting is off, the caller is not a configured proxy, or the header is absent, empty or
    sent more than once with different values (a proxy that appends rather than replaces
    would otherwise let a client choose)."""
    wanted = header.strip().lower()
    if not wanted or not address:
        return None
    if not any(_same_host(address, p) for p in proxies.split(",") if p.strip()):
        return None
    values = {v.strip() for k, v in headers if k.strip().lower() == wanted}
    if len(values) != 1:
        return None
    name = values.pop()
    return name or None
