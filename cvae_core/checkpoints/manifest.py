"""The SHA-256 manifest of a checkpoint folder: ``MANIFEST.sha256``, in ``sha256sum`` format.

It lists both files of each committed checkpoint; a listed file must match it. Saving keeps an
existing manifest in step for the files it writes; after any other change, regenerate it:

    python -m cvae_core.checkpoints manifest [FOLDER]
"""

from __future__ import annotations

import re
from pathlib import Path

from cvae_core.checkpoints._files import commit, folder_locked, guarded, read_regular, sha256_bytes
from cvae_core.checkpoints.metadata import CheckpointError

MANIFEST_NAME = "MANIFEST.sha256"
MAX_MANIFEST_BYTES = 1024 * 1024  # 100 bytes a line: thousands of checkpoints
MAX_HASHED_BYTES = 1024 * 1024 * 1024  # a file larger than this is not a checkpoint of ours
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
SUFFIXES = (".safetensors", ".json")


def regenerate_hint(folder: Path) -> str:
    return f"if the checkpoint files are the ones you want, regenerate it with: python -m cvae_core.checkpoints manifest {folder}"


def read_manifest(folder: str | Path) -> dict[str, str] | None:
    """``{file name: sha256}`` from ``folder/MANIFEST.sha256``, or None when there is none."""
    path = Path(folder) / MANIFEST_NAME
    try:
        # File names are bytes on POSIX: a name that is not UTF-8 round-trips as surrogates (os.fsdecode).
        text = read_regular(path, limit=MAX_MANIFEST_BYTES).decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None
    except OSError as e:
        reason = e.strerror or e
        raise CheckpointError(f"{MANIFEST_NAME} cannot be read ({reason}); {regenerate_hint(path.parent)}") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.match(line.rstrip("\r"))
        if not match:
            raise CheckpointError(
                f"{MANIFEST_NAME} line {number} is not '<sha256>  <file>'; {regenerate_hint(path.parent)}"
            )
        entries[match.group(2)] = match.group(1).lower()
    return entries


def manifest_lists(folder: str | Path, names: tuple[str, ...]) -> bool:
    """Does ``folder``'s manifest list every one of ``names``? (A listed file is checked at load,
    so a model whose files are listed is one the folder vouches for.) False without a readable one."""
    try:
        entries = read_manifest(folder)
    except CheckpointError:
        return False
    return entries is not None and all(name in entries for name in names)


def _text(entries: dict[str, str]) -> bytes:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries.items())).encode("utf-8", "surrogateescape")


def _covered(folder: Path) -> list[Path]:
    """The checkpoint files a manifest covers: every visible regular .safetensors and .json."""
    return sorted(
        p for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix in SUFFIXES and p.is_file()
    )


def write_manifest(folder: str | Path) -> Path:
    """Write ``folder/MANIFEST.sha256`` covering the .safetensors and .json of every checkpoint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist")
    path = folder / MANIFEST_NAME
    with folder_locked(folder):
        entries = {p.name: sha256_bytes(read_regular(p, limit=MAX_HASHED_BYTES)) for p in _covered(folder)}
        with guarded():
            commit([(path, _text(entries))])
    return path


def manifest_with(folder: Path, updates: dict[str, str]) -> tuple[Path, bytes] | None:
    """The manifest rewritten with new digests for files it already lists (None: nothing to do).

    An unreadable manifest is left as it is (loading reports it); a save never fails over it.
    """
    try:
        entries = read_manifest(folder)
    except CheckpointError:
        return None
    if entries is None or not any(name in entries for name in updates):
        return None
    entries.update({name: digest for name, digest in updates.items() if name in entries})
    return folder / MANIFEST_NAME, _text(entries)


def check_manifest(folder: Path, blobs: dict[str, bytes], weights_sha256: str | None) -> None:
    """Raise if a listed file differs from the manifest; ``weights_sha256`` (from the metadata,
    None when unreadable) tells a stale manifest from a damaged file."""
    entries = read_manifest(folder)
    if entries is None:
        return
    stale = [name for name, blob in blobs.items() if name in entries and entries[name] != sha256_bytes(blob)]
    if not stale:
        return
    names = " and ".join(stale)
    weights_name = next(n for n in blobs if n.endswith(".safetensors"))
    if weights_sha256 is not None and weights_sha256 == sha256_bytes(blobs[weights_name]):
        raise CheckpointError(
            f"{names}: changed since {MANIFEST_NAME} was written (the files agree with each other, so only the "
            f"manifest may be out of date, e.g. after evaluate); {regenerate_hint(folder)}"
        )
    raise CheckpointError(f"{names}: does not match {MANIFEST_NAME}; the file is damaged or was replaced")
