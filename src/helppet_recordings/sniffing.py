"""Audio sniffing: whether an object's first bytes hold the container its MIME type names.

:func:`sniff_audio` checks the container's own signature and the first
structure after it (a RIFF/WAVE header, an ISO BMFF ``ftyp`` box and its
brands, ADTS or MPEG audio frame headers and the frame that follows, an Ogg
page and its first packet, a FLAC STREAMINFO block, an EBML header's
DocType, a CAF header, an AMR magic line). It does not decode audio: a file
that passes may still fail to decode, which the later audio probe reports.

Read :data:`SNIFF_BYTES` (64 KiB) from the start of the object (a ranged
read) and pass them in; an object shorter than that is passed whole. At
least :data:`MIN_SNIFF_BYTES` (4 KiB) are needed: enough for an MPEG audio
frame header and the whole frame that follows it (at most 2,881 bytes), the
other formats need a few hundred bytes at most. An ID3v2 tag in front of
the audio is skipped; an MP3 whose tag (cover art, usually) runs past the
bytes given is accepted on a well-formed tag alone, since its first frame
is out of sight, while FLAC or AAC behind such a tag is refused.

No general sniffing library covers these formats as tightly. ``filetype``
1.2 finds neither CAF, AMR-WB nor MPEG layer II (``.mp2``), calls every ISO
BMFF file ``video/mp4`` (3GPP and 3GPP2 included) and any Ogg stream
``audio/ogg`` whatever its codec. ``puremagic`` 1.30 finds no MPEG layer II
either, does not tell AMR-WB from AMR, WebM from Matroska, nor the codec in
an Ogg stream, and names ADTS AAC and untagged MP3 with confidence 0.2 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from helppet_recordings import policy
from helppet_recordings.errors import UnsupportedContentTypeError

__all__ = ["MIN_SNIFF_BYTES", "SNIFF_BYTES", "sniff_audio"]

SNIFF_BYTES: Final = 64 * 1024
"""How many leading bytes to read and pass to :func:`sniff_audio`."""

MIN_SNIFF_BYTES: Final = 4 * 1024
"""The fewest leading bytes every check can decide on (see the module docstring)."""

Check = Callable[[bytes], str | None]


def sniff_audio(head: bytes, mime_type: str) -> str | None:
    """Return None when ``head`` starts the container ``mime_type`` names, else a short reason.

    ``head`` is the object's first bytes (:data:`SNIFF_BYTES` of them, or the
    whole object if it is shorter); ``mime_type`` is the signed content type,
    an allowed audio type or one of its aliases, in any case and with or
    without parameters. Reasons are stable machine words: ``empty``,
    ``html_document``, ``unsupported_type`` (not an allowed audio type), or
    one per format such as ``not_a_wav_container``. Never raises.
    """
    try:
        normalized, audio = policy.resolve_audio_type(mime_type)
    except UnsupportedContentTypeError:
        return "unsupported_type"
    if not head:
        return "empty"
    check = _opus if normalized == "audio/opus" else _CHECKS[audio.mime_type]
    reason = check(head)
    if reason is not None and _looks_like_html(head):
        return "html_document"
    return reason


# ----------------------------------------------------------------------------- RIFF, CAF, AMR


def _wav(head: bytes) -> str | None:
    if head[:4] in {b"RIFF", b"RF64", b"BW64"} and head[8:12] == b"WAVE":
        return None
    return "not_a_wav_container"


def _caf(head: bytes) -> str | None:
    # 'caff', file version 1, flags 0, and the audio description chunk first.
    if head[:8] == b"caff\x00\x01\x00\x00" and head[8:12] == b"desc":
        return None
    return "not_a_caf_container"


def _amr(head: bytes) -> str | None:
    return None if head.startswith((b"#!AMR\n", b"#!AMR_MC1.0\n")) else "not_an_amr_stream"


def _amr_wb(head: bytes) -> str | None:
    if head.startswith((b"#!AMR-WB\n", b"#!AMR-WB_MC1.0\n")):
        return None
    return "not_an_amr_wb_stream"


# ------------------------------------------------------------------------------------ ISO BMFF

_MP4_BRANDS: Final = frozenset(
    {
        b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
        b"mp41", b"mp42", b"mp71", b"M4A ", b"M4B ", b"M4P ", b"M4V ", b"F4A ", b"F4B ",
        b"dash", b"avc1", b"qt  ", b"MSNV",
    }
)  # fmt: skip
_IMAGE_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
_MAX_FTYP_SIZE: Final = 4096


def _ftyp_brands(head: bytes) -> list[bytes] | None:
    """Return the major and compatible brands of a leading ``ftyp`` box, or None."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    if not 16 <= size <= _MAX_FTYP_SIZE or size % 4:
        return None
    brands = [head[8:12]]
    brands.extend(head[at : at + 4] for at in range(16, min(size, len(head)) - 3, 4))
    return None if brands[0] in _IMAGE_BRANDS else brands


def _is_3gpp(brand: bytes) -> bool:
    return brand[:2] == b"3g" and brand[:3] != b"3g2"


def _is_3gpp2(brand: bytes) -> bool:
    return brand[:3] == b"3g2" or brand == b"kddi"


def _mp4(head: bytes) -> str | None:
    brands = _ftyp_brands(head) or []
    if any(b in _MP4_BRANDS or _is_3gpp(b) or _is_3gpp2(b) for b in brands):
        return None
    return "not_an_mp4_container"


def _3gpp(head: bytes) -> str | None:
    return None if any(map(_is_3gpp, _ftyp_brands(head) or [])) else "not_a_3gpp_container"


def _3gpp2(head: bytes) -> str | None:
    return None if any(map(_is_3gpp2, _ftyp_brands(head) or [])) else "not_a_3gpp2_container"


# ------------------------------------------------------------------------ ID3v2, MPEG, ADTS


def _id3_end(head: bytes) -> int:
    """Return where audio starts after a leading ID3v2 tag (0 without one, -1 if malformed)."""
    if head[:3] != b"ID3":
        return 0
    if len(head) < 10 or head[3] not in {2, 3, 4} or head[4] == 0xFF:
        return -1
    size_bytes = head[6:10]
    if any(byte & 0x80 for byte in size_bytes):
        return -1
    size = 0
    for byte in size_bytes:
        size = (size << 7) | byte
    footer = 10 if head[3] == 4 and head[5] & 0x10 else 0
    return 10 + size + footer


_MPEG_BITRATES: Final = {  # kbit/s by (MPEG-1?, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_SAMPLE_RATES: Final = {
    3: (44100, 48000, 32000),
    2: (22050, 24000, 16000),
    0: (11025, 12000, 8000),
}


def _mpeg_frame(head: bytes, at: int) -> tuple[tuple[int, int, int], int] | None:
    """Return an MPEG audio frame header's (version, layer, rate) and frame length, or None.

    The length is 0 for a free-format frame (no bitrate in the header).
    """
    header = head[at : at + 4]
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index == 15 or rate_index == 3:
        return None
    if header[3] & 3 == 2:  # reserved emphasis
        return None
    layer = 4 - layer_bits
    rate = _MPEG_SAMPLE_RATES[version][rate_index]
    if bitrate_index == 0:
        return (version, layer, rate), 0
    bitrate = _MPEG_BITRATES[(version == 3, layer)][bitrate_index - 1] * 1000
    padding = (header[2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 3 and version != 3:
        length = 72 * bitrate // rate + padding
    else:
        length = 144 * bitrate // rate + padding
    return (version, layer, rate), length


def _mpeg(head: bytes) -> str | None:
    start = _id3_end(head)
    if start < 0:
        return "not_an_mpeg_audio_stream"
    if start >= len(head) and start > 0:
        return None  # the tag runs past the bytes given: decided on the tag (module docstring)
    while start < len(head) and head[start] == 0:  # padding some taggers leave
        start += 1
    frame = _mpeg_frame(head, start)
    if frame is None:
        return "not_an_mpeg_audio_stream"
    kind, length = frame
    following = start + length
    if length and following + 4 <= len(head):
        second = _mpeg_frame(head, following)
        if second is None or second[0] != kind:
            return "not_an_mpeg_audio_stream"
    return None


def _adts_frame(head: bytes, at: int) -> int | None:
    """Return the length of the ADTS frame at ``at``, or None if no valid header is there."""
    header = head[at : at + 7]
    if len(header) < 7 or header[0] != 0xFF or header[1] & 0xF6 != 0xF0:
        return None  # sync word and layer 00
    if (header[2] >> 2) & 0xF > 12:  # sampling frequency index
        return None
    length = ((header[3] & 3) << 11) | (header[4] << 3) | (header[5] >> 5)
    header_size = 7 if header[1] & 1 else 9
    return length if length > header_size else None


def _aac(head: bytes) -> str | None:
    start = _id3_end(head)
    if start < 0 or start >= len(head):
        return "not_an_aac_stream"
    if head[start : start + 4] == b"ADIF":
        return None
    length = _adts_frame(head, start)
    if length is None:
        return "not_an_aac_stream"
    if start + length + 7 <= len(head) and _adts_frame(head, start + length) is None:
        return "not_an_aac_stream"
    return None


# ------------------------------------------------------------------------------- FLAC, Ogg

_OGG_AUDIO: Final = (b"OpusHead", b"\x01vorbis", b"\x7fFLAC", b"Speex   ")


def _flac(head: bytes) -> str | None:
    start = _id3_end(head)
    if start < 0:
        return "not_a_flac_stream"
    block = head[start : start + 8]
    # 'fLaC', then the STREAMINFO metadata block (type 0) of 34 bytes.
    if (
        block[:4] == b"fLaC"
        and len(block) == 8
        and block[4] & 0x7F == 0
        and block[5:8] == b"\0\0\x22"
    ):
        return None
    return "not_a_flac_stream"


def _ogg_first_packet(head: bytes) -> bytes | None:
    """Return the start of the first packet of a leading Ogg beginning-of-stream page."""
    if len(head) < 27 or head[:4] != b"OggS" or head[4] != 0 or not head[5] & 0x02:
        return None
    start = 27 + head[26]  # after the segment table
    if len(head) < start + 8:  # every audio codec's identification packet is longer
        return None
    return head[start : start + 8]


def _ogg(head: bytes) -> str | None:
    packet = _ogg_first_packet(head)
    if packet is None:
        return "not_an_ogg_container"
    return None if packet.startswith(_OGG_AUDIO) else "not_ogg_audio"


def _opus(head: bytes) -> str | None:
    packet = _ogg_first_packet(head)
    if packet is None:
        return "not_an_ogg_container"
    return None if packet.startswith(b"OpusHead") else "not_an_opus_stream"


# ------------------------------------------------------------------------------------- WebM

_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_DOCTYPE_ID: Final = 0x4282


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """Read an EBML variable-length integer at ``at``: (value, next offset), or None."""
    if at >= len(data) or data[at] == 0:
        return None
    first = data[at]
    width = 9 - first.bit_length()  # 1 for 1xxxxxxx, 8 for 00000001
    if at + width > len(data):
        return None
    value = first if keep_marker else first & (0xFF >> width)
    for byte in data[at + 1 : at + width]:
        value = (value << 8) | byte
    return value, at + width


def _webm(head: bytes) -> str | None:
    if not head.startswith(_EBML_MAGIC):
        return "not_a_webm_container"
    header_size = _vint(head, 4, keep_marker=False)
    if header_size is None:
        return "not_a_webm_container"
    size, at = header_size
    end = min(at + size, len(head))
    while at < end:
        element = _vint(head, at, keep_marker=True)
        length = element and _vint(head, element[1], keep_marker=False)
        if element is None or not length:
            break
        (element_id, _), (value_size, value_at) = element, length
        if element_id == _DOCTYPE_ID:
            doctype = head[value_at : value_at + value_size].rstrip(b"\0")
            return None if doctype == b"webm" else "not_a_webm_container"
        at = value_at + value_size
    return "not_a_webm_container"


# ------------------------------------------------------------------------------------ HTML

_HTML_STARTS: Final = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<!--")
_BOMS: Final = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _looks_like_html(head: bytes) -> bool:
    text = head[:1024]
    for bom in _BOMS:
        text = text.removeprefix(bom)
    return text.lstrip(b" \t\r\n\f").lower().startswith(_HTML_STARTS)


_CHECKS: Final[dict[str, Check]] = {
    "audio/wav": _wav,
    "audio/mp4": _mp4,
    "audio/3gpp": _3gpp,
    "audio/3gpp2": _3gpp2,
    "audio/aac": _aac,
    "audio/mpeg": _mpeg,
    "audio/ogg": _ogg,
    "audio/flac": _flac,
    "audio/webm": _webm,
    "audio/x-caf": _caf,
    "audio/amr": _amr,
    "audio/amr-wb": _amr_wb,
}
