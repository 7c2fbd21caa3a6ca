"""What a file is, by its first bytes, and a safe name for it.

Used by `parsers.mail.attachments`. Types are proved by magic bytes, never by the
file name or the declared MIME type, which the sender chooses.
"""

from __future__ import annotations

import re
import unicodedata

ACCEPTED_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})

# Magic-byte table. No sniffing library is in the dependency set (python-magic
# needs the system libmagic), and a dozen prefixes is all this decision needs.
# (prefix, offset, mime type, refusal code or None for "look closer")
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\x78\x9f\x3e\x22", 0, "application/ms-tnef"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"PK\x05\x06", 0, "application/zip"),
    (b"PK\x07\x08", 0, "application/zip"),
    (b"Rar!\x1a\x07", 0, "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"BZh", 0, "application/x-bzip2"),
    (b"\xfd7zXZ\x00", 0, "application/x-xz"),
    (b"MSCF", 0, "application/vnd.ms-cab-compressed"),
    (b"ustar", 257, "application/x-tar"),
    (b"MZ", 0, "application/x-msdownload"),
    (b"\x7fELF", 0, "application/x-executable"),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", 0, "application/x-mach-binary"),
    (b"#!", 0, "text/x-script"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/x-ole-storage"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
ARCHIVE_TYPES = frozenset(
    {
        "application/zip",
        "application/vnd.rar",
        "application/x-7z-compressed",
        "application/gzip",
        "application/x-bzip2",
        "application/x-xz",
        "application/vnd.ms-cab-compressed",
        "application/x-tar",
    }
)
EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-executable",
        "application/x-mach-binary",
        "text/x-script",
    }
)
ALLOWED_HINT = "please send the receipt as JPG, PNG or PDF"


def sniff_type(data: bytes) -> str | None:
    """The MIME type the content's first bytes prove, or None when unknown."""
    for prefix, offset, mime in _MAGIC:
        if data[offset : offset + len(prefix)] == prefix:
            return mime
    if b"%PDF-" in data[:1024]:  # PDF allows junk before the header
        return "application/pdf"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_UNSAFE_CHARS = re.compile(r'[<>:"|?*\\/\x00-\x1f\x7f]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\.|$)", re.IGNORECASE)
_MAX_NAME = 100


def safe_filename(name: str) -> str:
    """A name safe to show and to store under: no path, no '..', no control
    characters, no reserved device names, at most 100 characters (extension kept)."""
    name = unicodedata.normalize("NFC", str(name))
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_CHARS.sub("_", name)
    while ".." in name:
        name = name.replace("..", ".")
    name = name.strip(" .")
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    if len(name) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _MAX_NAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:_MAX_NAME]
    return name or "attachment"


KIND_NAMES = {
    "application/x-ole-storage": "an Office document",
    "image/gif": "a GIF image",
    "image/bmp": "a BMP image",
    "image/tiff": "a TIFF image",
    "image/webp": "a WebP image",
    "image/avif": "an AVIF image",
}
