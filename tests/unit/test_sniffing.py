"""sniff_audio on real files of every allowed format, made on the fly with PyAV (FFmpeg)."""

from __future__ import annotations

import functools
import io
import math
import random
import struct

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings.policy import AUDIO_TYPES
from helppet_recordings.sniffing import MIN_SNIFF_BYTES, SNIFF_BYTES, sniff_audio

CANONICAL = [audio.mime_type for audio in AUDIO_TYPES]
ALL_TYPES = [name for audio in AUDIO_TYPES for name in (audio.mime_type, *audio.aliases)]
REASONS = {
    "empty",
    "html_document",
    "unsupported_type",
    "not_a_wav_container",
    "not_an_mp4_container",
    "not_a_3gpp_container",
    "not_a_3gpp2_container",
    "not_an_aac_stream",
    "not_an_mpeg_audio_stream",
    "not_an_ogg_container",
    "not_ogg_audio",
    "not_an_opus_stream",
    "not_a_flac_stream",
    "not_a_webm_container",
    "not_a_caf_container",
    "not_an_amr_stream",
    "not_an_amr_wb_stream",
}
HTML = b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>Sign in</body></html>\n"


def _encode(container: str, codec: str, rate: int, *, layout: str = "mono") -> bytes:
    """Half a second of a 440 Hz tone, encoded with ``codec`` into ``container``."""
    channels = 2 if layout == "stereo" else 1
    samples = rate // 2
    pcm = struct.pack(
        f"<{samples * channels}h",
        *(
            int(8000 * math.sin(2 * math.pi * 440 * (i // channels) / rate))
            for i in range(samples * channels)
        ),
    )
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(
            codec, rate=rate, layout=layout, options={"strict": "experimental"}
        )
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame(format="s16", layout=layout, samples=samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _amr_wb() -> bytes:
    """An AMR-WB file: FFmpeg has no AMR-WB encoder here, so 23.85 kbit/s frames by hand."""
    rng = random.Random(7)
    frames = b"".join(bytes([0x44]) + rng.randbytes(60) for _ in range(25))  # FT 8, Q 1
    return b"#!AMR-WB\n" + frames


def _decodes(data: bytes) -> bool:
    """Whether FFmpeg finds an audio stream and decodes at least one frame from ``data``."""
    with av.open(io.BytesIO(data), "r") as container:
        return any(frame.samples for frame in container.decode(audio=0))


@functools.cache
def samples() -> dict[str, bytes]:
    """One file per format (and codec, where a container holds several)."""
    return {
        "wav": _encode("wav", "pcm_s16le", 16000),
        "m4a": _encode("ipod", "aac", 44100),
        "mp4": _encode("mp4", "aac", 44100),
        "3gp": _encode("3gp", "aac", 16000),
        "3g2": _encode("3g2", "aac", 16000),
        "adts": _encode("adts", "aac", 44100),
        "mp3": _encode("mp3", "libmp3lame", 44100),
        "mp3-mpeg2": _encode("mp3", "libmp3lame", 22050),
        "mp3-mpeg25": _encode("mp3", "libmp3lame", 8000),
        "mp2": _encode("mp2", "mp2", 48000),
        "ogg-vorbis": _encode("ogg", "vorbis", 44100, layout="stereo"),
        "ogg-flac": _encode("ogg", "flac", 16000),
        "opus": _encode("opus", "libopus", 48000),
        "flac": _encode("flac", "flac", 16000),
        "webm": _encode("webm", "libopus", 48000),
        "mka": _encode("matroska", "libopus", 48000),
        "caf-alac": _encode("caf", "alac", 16000),
        "caf-pcm": _encode("caf", "pcm_s16le", 16000),
        "amr": _encode("amr", "libopencore_amrnb", 8000),
        "amr-wb": _amr_wb(),
    }


# Which signed types each sample satisfies; every other allowed type must refuse it.
ACCEPTED_BY: dict[str, set[str]] = {
    "wav": {"audio/wav"},
    "m4a": {"audio/mp4"},
    "mp4": {"audio/mp4"},
    "3gp": {"audio/mp4", "audio/3gpp"},
    "3g2": {"audio/mp4", "audio/3gpp2"},
    "adts": {"audio/aac"},
    "mp3": {"audio/mpeg"},
    "mp3-mpeg2": {"audio/mpeg"},
    "mp3-mpeg25": {"audio/mpeg"},
    "mp2": {"audio/mpeg"},
    "ogg-vorbis": {"audio/ogg"},
    "ogg-flac": {"audio/ogg"},
    "opus": {"audio/ogg", "audio/opus"},
    "flac": {"audio/flac"},
    "webm": {"audio/webm"},
    "mka": set(),
    "caf-alac": {"audio/x-caf"},
    "caf-pcm": {"audio/x-caf"},
    "amr": {"audio/amr"},
    "amr-wb": {"audio/amr-wb"},
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_BY))
def test_each_file_matches_its_own_types_and_no_other(name: str) -> None:
    """A real file passes under the types it is, and is refused with a reason under the rest."""
    data = samples()[name]
    assert _decodes(data)
    for mime_type in [*CANONICAL, "audio/opus"]:
        reason = sniff_audio(data[:SNIFF_BYTES], mime_type)
        if mime_type in ACCEPTED_BY[name]:
            assert reason is None, (mime_type, reason)
        else:
            assert reason in REASONS - {"empty", "html_document", "unsupported_type"}, mime_type


@pytest.mark.parametrize("name", sorted(ACCEPTED_BY))
def test_the_documented_minimum_of_bytes_suffices(name: str) -> None:
    """MIN_SNIFF_BYTES leading bytes decide as well as the whole head does."""
    data = samples()[name]
    for mime_type in ACCEPTED_BY[name]:
        assert sniff_audio(data[:MIN_SNIFF_BYTES], mime_type) is None


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("m4a", "audio/x-m4a"),
        ("m4a", "Audio/MP4; codecs=mp4a.40.2"),
        ("mp3", "audio/mp3"),
        ("wav", "audio/x-wav"),
        ("adts", "audio/x-aac"),
        ("flac", "audio/x-flac"),
        ("caf-alac", "audio/caf"),
        ("3gp", "audio/3gp"),
        ("amr", "audio/x-amr"),
        ("ogg-vorbis", "audio/x-ogg"),
    ],
)
def test_aliases_are_checked_as_their_format(name: str, mime_type: str) -> None:
    """An alias or a parametrized type is checked as the format it names."""
    assert sniff_audio(samples()[name], mime_type) is None


@pytest.mark.parametrize("mime_type", ALL_TYPES)
def test_an_html_page_is_named_as_such(mime_type: str) -> None:
    """A web page (an error page, a login form) is refused as html_document under any type."""
    assert sniff_audio(HTML, mime_type) == "html_document"
    assert sniff_audio(b"\xef\xbb\xbf\n  <html lang=en>" + HTML, mime_type) == "html_document"


@pytest.mark.parametrize("mime_type", ALL_TYPES)
def test_random_bytes_are_refused(mime_type: str) -> None:
    """Noise is no container of any type."""
    noise = random.Random(2024).randbytes(SNIFF_BYTES)
    reason = sniff_audio(noise, mime_type)
    assert reason in REASONS - {"empty", "html_document", "unsupported_type"}


def test_a_wav_header_under_an_mp3_type_is_a_mismatch() -> None:
    """A WAV file signed as MP3 is not an MPEG audio stream."""
    assert sniff_audio(samples()["wav"][:44], "audio/mpeg") == "not_an_mpeg_audio_stream"


def test_empty_and_unsupported() -> None:
    """No bytes is empty; a type outside the allow-list is unsupported_type."""
    assert sniff_audio(b"", "audio/wav") == "empty"
    assert sniff_audio(samples()["wav"], "text/html") == "unsupported_type"
    assert sniff_audio(b"", "video/mp4") == "unsupported_type"


def _id3(size: int, *, version: int = 4) -> bytes:
    """An ID3v2 tag header announcing ``size`` bytes of frames, and those (zero) bytes."""
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3" + bytes([version, 0, 0]) + syncsafe + b"\0" * size


def test_an_mp3_behind_a_tag_longer_than_the_head_is_accepted_on_the_tag() -> None:
    """Cover art can push the first frame past 64 KiB: the tag alone decides."""
    tagged = _id3(200_000) + samples()["mp3"]
    assert sniff_audio(tagged[:SNIFF_BYTES], "audio/mpeg") is None
    broken = bytearray(tagged[:SNIFF_BYTES])
    broken[6] = 0x80  # a size byte that is not syncsafe
    assert sniff_audio(bytes(broken), "audio/mpeg") == "not_an_mpeg_audio_stream"


@pytest.mark.parametrize("name", ["mp3", "mp2"])
def test_mpeg_audio_without_a_tag_is_accepted(name: str) -> None:
    """Frames straight from the first byte (no ID3v2 tag) are MPEG audio too."""
    data = samples()[name]
    tagged = data.startswith(b"ID3")  # FFmpeg tags its MP3 output, not its MP2 output
    untagged = data[10 + int.from_bytes(data[6:10], "big") :] if tagged else data  # small tag
    assert untagged[0] == 0xFF
    assert sniff_audio(untagged, "audio/mpeg") is None
    assert sniff_audio(untagged, "audio/aac") == "not_an_aac_stream"


@pytest.mark.parametrize(("name", "mime_type"), [("flac", "audio/flac"), ("adts", "audio/aac")])
def test_flac_and_aac_behind_a_short_tag_are_accepted(name: str, mime_type: str) -> None:
    """An ID3v2 tag before FLAC or ADTS AAC is skipped; one running past the head fails."""
    assert sniff_audio(_id3(512, version=3) + samples()[name], mime_type) is None
    past_the_head = (_id3(SNIFF_BYTES) + samples()[name])[:SNIFF_BYTES]
    assert sniff_audio(past_the_head, mime_type) is not None


def test_ogg_with_a_video_codec_is_not_audio() -> None:
    """An Ogg stream whose first packet is not Opus, Vorbis, FLAC or Speex is refused."""
    theora = samples()["opus"].replace(b"OpusHead", b"\x80theora", 1)
    assert sniff_audio(theora, "audio/ogg") == "not_ogg_audio"
    assert sniff_audio(samples()["ogg-vorbis"], "audio/opus") == "not_an_opus_stream"


def test_an_image_in_an_iso_container_is_not_mp4_audio() -> None:
    """A HEIF image's ftyp (major brand heic) is refused even with an ISO compatible brand."""
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1iso8" + b"\0" * 64
    assert sniff_audio(heic, "audio/mp4") == "not_an_mp4_container"


def _layer1_frame() -> bytes:
    """An MPEG-1 layer I frame, 288 kbit/s at 44.1 kHz: (12 * 288000 // 44100) * 4 bytes."""
    return b"\xff\xff\x90\x00" + b"\x00" * (312 - 4)


def test_mpeg_layer_one_and_free_format_frames() -> None:
    """Layer I frames are measured with their own formula; a free-format frame stands alone."""
    assert sniff_audio(_layer1_frame() * 2, "audio/mpeg") is None
    assert sniff_audio(_layer1_frame() + b"\x00" * 8, "audio/mpeg") == "not_an_mpeg_audio_stream"
    assert sniff_audio(b"\xff\xfb\x00\x00" + b"\x55" * 500, "audio/mpeg") is None  # bitrate 0


@pytest.mark.parametrize(
    "head",
    [
        b"ID3\x05\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00",  # unknown ID3 version
        b"\xff\xfb\xf0\x00" * 4,  # bitrate index 15
        b"\xff\xfb\x9c\x00" * 4,  # sample rate index 3
        b"\xff\xf3\x90\x02" * 4,  # reserved emphasis
        b"\xff\xeb\x90\x00" * 4,  # reserved version
    ],
)
def test_malformed_mpeg_headers_are_refused(head: bytes) -> None:
    """Reserved values in a frame header, or a bad tag, are no MPEG audio."""
    assert sniff_audio(head, "audio/mpeg") == "not_an_mpeg_audio_stream"


def test_adif_and_broken_adts() -> None:
    """ADIF AAC passes; an ADTS header followed by no second frame, or a bad rate, does not."""
    assert sniff_audio(b"ADIF" + b"\x00" * 60, "audio/aac") is None
    first = samples()["adts"][:7]
    length = ((first[3] & 3) << 11) | (first[4] << 3) | (first[5] >> 5)
    assert (
        sniff_audio(samples()["adts"][:length] + b"\x00" * 16, "audio/aac") == "not_an_aac_stream"
    )
    bad_rate = first[:2] + bytes([first[2] | 0x3C]) + first[3:]
    assert sniff_audio(bad_rate + b"\x00" * 16, "audio/aac") == "not_an_aac_stream"
    assert sniff_audio(b"ID3\x05" + b"\x00" * 20, "audio/aac") == "not_an_aac_stream"


def test_broken_flac_and_ogg_heads() -> None:
    """A bad tag before FLAC, a block that is not STREAMINFO, a non-first Ogg page: refused."""
    flac = samples()["flac"]
    assert sniff_audio(b"ID3\x04\x00\x00\x80" + flac, "audio/flac") == "not_a_flac_stream"
    assert sniff_audio(flac[:4] + b"\x01" + flac[5:], "audio/flac") == "not_a_flac_stream"
    ogg = samples()["opus"]
    not_first = ogg[:5] + bytes([ogg[5] & ~0x02]) + ogg[6:]
    assert sniff_audio(not_first, "audio/ogg") == "not_an_ogg_container"
    assert sniff_audio(ogg[:30], "audio/ogg") == "not_an_ogg_container"
    assert sniff_audio(ogg[:27], "audio/opus") == "not_an_ogg_container"


def test_broken_ebml_heads() -> None:
    """EBML without a readable size, with a cut element or without a DocType is no WebM."""
    magic = b"\x1a\x45\xdf\xa3"
    assert sniff_audio(magic + b"\x00", "audio/webm") == "not_a_webm_container"
    assert sniff_audio(magic + b"\x01\x00", "audio/webm") == "not_a_webm_container"
    assert sniff_audio(magic + b"\x8a\x42\x86\x81\x01\x42\xf7\x81\x01\x00", "audio/webm") == (
        "not_a_webm_container"
    )
    assert sniff_audio(magic + b"\x85\x42\x82\x00", "audio/webm") == "not_a_webm_container"


@given(st.binary(max_size=4096), st.sampled_from([*ALL_TYPES, "text/plain", ""]))
def test_any_bytes_never_crash(head: bytes, mime_type: str) -> None:
    """Whatever the bytes and the type, the answer is None or a known reason."""
    reason = sniff_audio(head, mime_type)
    assert reason is None or reason in REASONS


@given(st.sampled_from(sorted(ACCEPTED_BY)), st.integers(min_value=0, max_value=600), st.data())
def test_truncated_and_damaged_files_never_crash(name: str, cut: int, data: st.DataObject) -> None:
    """Cut or corrupted heads of real files give None or a known reason, never an error."""
    head = bytearray(samples()[name][:cut])
    if head:
        at = data.draw(st.integers(min_value=0, max_value=len(head) - 1))
        head[at] = data.draw(st.integers(min_value=0, max_value=255))
    for mime_type in CANONICAL:
        reason = sniff_audio(bytes(head), mime_type)
        assert reason is None or reason in REASONS
