"""Checks on packaged formats before a library opens them: zip bombs and password-protected files.

docx, xlsx, pptx and hwpx are zip packages of XML. A small file can claim to unpack to gigabytes;
`check_zip` refuses one whose members, as the zip's directory declares them, add up to more than
the unpack limit (RAG_MAX_FILE_MB, the same cap as a file's own size). The declared sizes bound
what is really read: Python's zipfile stops a member at its declared size and fails the CRC if
the data went on, so a lying directory makes a broken file, never a big one.

A password-protected Office file is not a zip at all but an OLE compound file holding an
`EncryptedPackage` stream; it is named as such instead of "broken".
"""

from __future__ import annotations

import io
import zipfile

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class ContainerError(Exception):
    """Why a package is not opened; the message is shown beside the file."""


def is_encrypted_office(data: bytes) -> bool:
    """Whether `data` is an Office file saved with a password (an OLE file with EncryptedPackage)."""
    if not data.startswith(OLE_MAGIC):
        return False
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            return ole.exists("EncryptedPackage")
    except Exception:  # damaged OLE: not ours to diagnose here, the caller reports it as broken
        return False


def check_zip(data: bytes, kind: str, limit: int) -> None:
    """Raise ContainerError unless `data` is a zip whose members unpack to at most `limit` bytes."""
    if is_encrypted_office(data):
        raise ContainerError(f"password-protected {kind} (save a copy without the password)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ContainerError(f"broken {kind} (not a zip package: {exc})") from exc
    if total > limit:
        raise ContainerError(
            f"{kind} unpacks to {total / 2**20:,.0f} MB, over the {limit / 2**20:g} MB limit "
            "(a zip bomb, or a very large file: raise RAG_MAX_FILE_MB)"
        )
