"""inspect_audio and decode_pcm on real files of every accepted format, made by PyAV's encoders."""

from __future__ import annotations

import io
import math
import os
import random
import sys
import wave
from pathlib import Path

import av
import pytest

from helppet_recordings import policy
from helppet_recordings.audio import (
    ACCEPTED_DEMUXERS,
    DECODE_REASONS,
    AudioDecodeError,
    AudioInfo,
    RangeReader,
    decode_pcm,
    encode_pcm,
    inspect_audio,
    probe,
    sniff_container,
)
from helppet_recordings.audio._containers import mp3_declares_length
from helppet_recordings.errors import (
    MissingDependencyError,
    StorageUnavailableError,
    UploadVerificationError,
)
from tests.support.audio import (
    FORMATS,
    encode_pcm_as,
    encode_tone,
    pcm_blocks_in_matroska,
    silence,
    tone,
)
from tests.support.flac import FlacFrame, flac_stream

SECONDS = 1.5
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def tones() -> dict[str, bytes]:
    """One 1.5 s tone per format, encoded once for the module."""
    return {name: encode_tone(name, SECONDS) for name in FORMATS}


def test_every_accepted_type_with_an_encoder_is_generated() -> None:
    """The generated formats cover every accepted MIME type but AMR-WB (no encoder in PyAV)."""
    covered = {encoding.mime_type for encoding in FORMATS.values()}
    accepted = {audio.mime_type for audio in policy.AUDIO_TYPES}
    assert accepted - covered == {"audio/amr-wb", "audio/3gpp2"}
    assert covered <= accepted


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_inspect_measures_each_format(name: str, tones: dict[str, bytes]) -> None:
    """Container, codec, rate and channels are reported; the duration is within 50 ms."""
    encoding = FORMATS[name]
    info = inspect_audio(io.BytesIO(tones[name]))
    assert info.format == encoding.expected_format
    assert info.codec == encoding.expected_codec
    assert info.sample_rate == encoding.sample_rate
    assert info.channels == encoding.channels
    assert info.duration_seconds == pytest.approx(SECONDS, abs=0.05)
    assert sniff_container(tones[name][:64]) in {info.format, "webm"}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_inspect_reads_through_a_range_reader(name: str, tones: dict[str, bytes]) -> None:
    """Over ranged reads the result is the same, and each small block is fetched about once."""
    data = tones[name]
    reader = RangeReader(
        lambda offset, length: data[offset : offset + length], len(data), block_size=4096
    )
    assert inspect_audio(reader) == inspect_audio(io.BytesIO(data))
    assert reader.fetches <= 3 * (len(data) // 4096 + 1)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_uploads_are_refused(name: str, keep: float, tones: dict[str, bytes]) -> None:
    """A file cut short is AUDIO_UNDECODABLE (truncated or damaged), never a shorter clip."""
    data = tones[name]
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data[: int(len(data) * keep)]))
    error = caught.value
    assert error.error_code == "AUDIO_UNDECODABLE"
    assert error.http_status == 422
    assert error.reason in {"truncated", "corrupt"}
    assert error.to_dict()["details"]["reason"] == error.reason


def test_truncation_reasons_where_the_header_says_how_long() -> None:
    """WAV, MP3 (Xing), Ogg and WebM name the truncation as such."""
    for name in ("wav", "mp3", "opus", "vorbis", "webm"):
        data = encode_tone(name, SECONDS)
        with pytest.raises(AudioDecodeError) as caught:
            inspect_audio(io.BytesIO(data[: len(data) * 3 // 4]))
        assert caught.value.reason == "truncated", name


@pytest.mark.parametrize("name", sorted(set(FORMATS) - {"wav"}))
def test_garbage_behind_a_valid_header_is_refused(name: str, tones: dict[str, bytes]) -> None:
    """Random bytes after a real header do not decode (WAV is excluded: any bytes are PCM)."""
    data = tones[name]
    rng = random.Random(name)
    garbage = data[:64] + rng.randbytes(len(data) - 64)
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(garbage))
    # In Ogg, garbage where the next page should be reads as a page cut short.
    allowed = DECODE_REASONS if FORMATS[name].container == "ogg" else DECODE_REASONS - {"truncated"}
    assert caught.value.reason in allowed


def _wav(pcm: bytes, *, declared: int | None = None, rate: int = 16000) -> bytes:
    """A canonical 44-byte-header mono WAV, optionally declaring another data size."""
    output = io.BytesIO()
    with wave.open(output, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    data = output.getvalue()
    if declared is not None:
        data = data[:40] + declared.to_bytes(4, "little") + data[44:]
    return data


def test_wav_header_with_noise_decodes_as_noise() -> None:
    """A WAV header before random bytes is valid PCM: measured by its length, not refused."""
    info = inspect_audio(io.BytesIO(_wav(os.urandom(32000))))
    assert info.duration_seconds == pytest.approx(1.0)


def test_wav_header_that_claims_more_than_the_file_holds() -> None:
    """A WAV whose data chunk claims 10 s but holds 1 s is truncated, whatever FFmpeg says."""
    lying = _wav(tone(1.0, 16000), declared=320000)
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(lying))
    assert caught.value.reason == "truncated"
    assert caught.value.details["missing_bytes"] == 320000 - 32000


def test_streaming_wav_without_a_length_is_measured() -> None:
    """A WAV whose header leaves the length open (0xFFFFFFFF) is measured by decoding."""
    open_ended = _wav(tone(1.0, 16000), declared=0xFFFFFFFF)
    open_ended = open_ended[:4] + b"\xff\xff\xff\xff" + open_ended[8:]
    assert inspect_audio(io.BytesIO(open_ended)).duration_seconds == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "unrecognized_container"),
        (b"not audio at all, just text" * 50, "unrecognized_container"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "corrupt"),
        (
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n",
            "unrecognized_container",
        ),
    ],
)
def test_non_audio_is_refused(data: bytes, reason: str) -> None:
    """Empty files, text, a bare header and playlists are refused without being followed."""
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.reason == reason


def test_playlist_demuxers_are_not_accepted() -> None:
    """Only the accepted audio containers may be opened: no HLS, concat or image demuxers."""
    assert not {"hls", "concat", "image2", "mpegts"} & set(ACCEPTED_DEMUXERS)


def test_container_without_audio_is_refused() -> None:
    """A Matroska file holding only a subtitle track has no audio stream."""
    output = io.BytesIO()
    with av.open(output, mode="w", format="matroska") as container:
        stream = container.add_stream("subrip")
        assert stream is not None
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(output.getvalue()))
    assert caught.value.reason in {"no_audio_stream", "unrecognized_container"}


def test_decode_pcm_resamples_to_16k_mono() -> None:
    """Stereo 44.1 kHz Vorbis comes out as 16 kHz mono 16-bit PCM of the same length."""
    pcm = b"".join(decode_pcm(io.BytesIO(encode_tone("vorbis", SECONDS))))
    assert len(pcm) % 2 == 0
    assert len(pcm) / 32000 == pytest.approx(SECONDS, abs=0.05)
    eight_k = b"".join(decode_pcm(io.BytesIO(encode_tone("flac", SECONDS)), sample_rate=8000))
    assert len(eight_k) / 16000 == pytest.approx(SECONDS, abs=0.01)


def test_decode_pcm_keeps_the_signal() -> None:
    """Silence stays silent and a tone keeps its level through decoding and resampling."""
    pcm = tone(0.5, 16000) + silence(0.5, 16000)
    flac = encode_pcm([pcm], sample_rate=16000)
    decoded = b"".join(decode_pcm(io.BytesIO(flac)))
    assert decoded == pcm  # FLAC is lossless and the rate already matches


def test_decode_pcm_raises_for_truncated_audio_after_the_samples() -> None:
    """A consumer that reads every chunk of a truncated file sees the error at the end."""
    data = encode_tone("mp3", SECONDS)
    chunks = decode_pcm(io.BytesIO(data[: len(data) * 3 // 4]))
    with pytest.raises(AudioDecodeError):
        for _chunk in chunks:
            pass


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3"])
def test_encode_pcm_round_trips(fmt: str) -> None:
    """Encoded PCM decodes to the same length in the requested format."""
    pcm = tone(1.0, 16000)
    encoded = encode_pcm([pcm[:1000], pcm[1000:]], sample_rate=16000, format=fmt)
    info = inspect_audio(io.BytesIO(encoded))
    assert info.format == fmt
    assert info.duration_seconds == pytest.approx(1.0, abs=0.03)


def test_storage_errors_pass_through_unchanged() -> None:
    """An unreachable store surfaces as StorageUnavailableError, not as bad audio."""
    data = encode_tone("flac", SECONDS)

    def read_range(offset: int, length: int) -> bytes | None:
        if offset >= 4096:
            raise StorageUnavailableError(retry_after=7)
        return data[offset : offset + length]

    with pytest.raises(StorageUnavailableError) as caught:
        inspect_audio(RangeReader(read_range, len(data), block_size=4096))
    assert caught.value.retry_after == 7


@pytest.mark.parametrize(
    ("answer", "reason"), [(None, "object_missing"), (b"short", "object_changed")]
)
def test_a_vanished_or_changed_object_is_an_upload_verification_error(
    answer: bytes | None, reason: str
) -> None:
    """When the verified object is gone or shorter, reading says so instead of decoding less."""
    data = encode_tone("flac", SECONDS)

    def read_range(offset: int, length: int) -> bytes | None:
        return data[offset : offset + length] if offset == 0 else answer

    with pytest.raises(UploadVerificationError) as caught:
        inspect_audio(RangeReader(read_range, len(data), block_size=4096))
    assert caught.value.details["reason"] == reason


def test_speech_fixture_is_measured_exactly() -> None:
    """The committed speech recording measures 6.43 s, 16 kHz mono FLAC."""
    info = inspect_audio(DATA / "hello-doctor.flac")
    assert info == AudioInfo("flac", "flac", pytest.approx(102825 / 16000), 16000, 1)  # type: ignore[arg-type]
    assert info.to_dict()["duration_seconds"] == pytest.approx(6.4265625)


def test_missing_av_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PyAV, decoding raises MissingDependencyError naming the audio extra."""
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingDependencyError) as caught:
        inspect_audio(io.BytesIO(b"x"))
    assert caught.value.details == {"package": "av", "extra": "audio"}


def test_a_sample_rate_below_speech_is_refused_before_decoding() -> None:
    """100 KB at 1 Hz would be 14 hours of audio to resample and transcribe: refused."""
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(_wav(os.urandom(100_000), rate=1)))
    assert (caught.value.reason, caught.value.details["sample_rate"]) == ("sample_rate", 1)
    with pytest.raises(AudioDecodeError):
        next(iter(decode_pcm(io.BytesIO(_wav(tone(0.5, 7999), rate=7999)))))
    assert inspect_audio(io.BytesIO(_wav(tone(0.5, 8000), rate=8000))).sample_rate == 8000


def test_audio_longer_than_a_recording_may_be_stops_decoding() -> None:
    """Decoding stops once the audio passes the longest recording the policy allows.

    A day and a minute of silence in 160 KB: FLAC's longest blocks at 8 kHz
    (8.2 s each), every subframe one constant sample.
    """
    block_seconds = 65535 / 8000
    frames = math.ceil(policy.MAX_DURATION_SECONDS / block_seconds) + 8
    data = flac_stream([FlacFrame(65535)] * frames, sample_rate=8000)
    assert len(data) < 200_000
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.reason == "too_long"
    decoded = caught.value.details["decoded_seconds"]
    assert policy.MAX_DURATION_SECONDS < decoded <= policy.MAX_DURATION_SECONDS + block_seconds
    assert decoded < frames * block_seconds - 60  # it stopped, a minute short of the end


def _silence_then_noise(rate: int = 44100) -> bytes:
    """Five seconds of silence, then five of noise: the first frames' bit rate says nothing."""
    noise = random.Random(1).randbytes(5 * rate * 2)
    return silence(5, rate) + noise


def test_a_vbr_mp3_without_a_length_header_is_measured_not_refused() -> None:
    """No Xing/Info header (a streaming encoder's file): FFmpeg's estimate is no declared length."""
    data = encode_pcm_as(
        "mp3", _silence_then_noise(), container_options={"write_xing": "0"}, variable_bit_rate=True
    )
    assert not mp3_declares_length(io.BytesIO(data))
    info = inspect_audio(io.BytesIO(data))
    assert info.duration_seconds == pytest.approx(10.0, abs=0.1)


def test_a_truncated_mp3_with_a_length_header_is_still_refused() -> None:
    """With a Xing header the length is declared, and a file cut short is caught."""
    data = encode_pcm_as("mp3", _silence_then_noise(), variable_bit_rate=True)
    assert mp3_declares_length(io.BytesIO(data))
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data[: len(data) * 2 // 3]))
    assert caught.value.details["reason"] == "truncated"


def test_the_length_header_is_found_behind_an_id3_tag() -> None:
    """An ID3v2 tag (with its size in synchsafe bytes) is skipped to the first frame."""
    data = encode_tone("mp3", SECONDS)
    tag_body = b"TIT2" + (11).to_bytes(4, "big") + b"\0\0\0" + b"a" * 10
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, len(tag_body)]) + tag_body
    tagged = io.BytesIO(tag + data)
    tagged.seek(5)
    assert mp3_declares_length(tagged)
    assert tagged.tell() == 5
    assert not mp3_declares_length(io.BytesIO(tag + b"\0" * 5000))


def test_pcm_decoding_follows_a_change_of_rate_midway() -> None:
    """Two ADTS sessions appended (44.1 then 16 kHz) decode to the whole length at 16 kHz."""
    first = encode_pcm_as("aac", tone(2.0, FORMATS["aac"].sample_rate))
    second = encode_pcm_as("aac", tone(2.0, 16000), sample_rate=16000)
    info = inspect_audio(io.BytesIO(first + second))
    pcm = b"".join(decode_pcm(io.BytesIO(first + second)))
    assert len(pcm) / 2 / 16000 == pytest.approx(info.duration_seconds, abs=0.1)
    assert info.duration_seconds == pytest.approx(4.0, abs=0.25)  # with AAC priming, per session


def test_a_xing_header_without_its_frame_count_declares_no_length() -> None:
    """Xing flags without the frame count (bit 1): FFmpeg estimates, so no truncation verdict."""
    data = bytearray(encode_pcm_as("mp3", _silence_then_noise(), variable_bit_rate=True))
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0
    data[tag + 4 : tag + 8] = b"\0\0\0\0"
    assert not mp3_declares_length(io.BytesIO(bytes(data)))
    assert inspect_audio(io.BytesIO(bytes(data))).duration_seconds == pytest.approx(10.0, abs=0.1)


def _decode_until_refused(data: bytes) -> tuple[list[bytes], AudioDecodeError]:
    """Collect decode_pcm's chunks up to the AudioDecodeError it must raise."""
    chunks: list[bytes] = []
    with pytest.raises(AudioDecodeError) as caught:
        chunks.extend(decode_pcm(io.BytesIO(data)))
    return chunks, caught.value


def test_a_frame_stating_a_low_rate_midway_is_refused_before_it_is_resampled() -> None:
    """Every FLAC frame states its own rate: a late 1 kHz frame is refused, not resampled 16x."""
    data = flac_stream([FlacFrame(4096)] * 4 + [FlacFrame(4096, sample_rate=1000)])
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.details == {"reason": "sample_rate", "sample_rate": 1000}
    chunks, error = _decode_until_refused(data)
    assert error.reason == "sample_rate"
    assert sum(map(len, chunks)) <= 4 * 4096 * 2  # the four 16 kHz frames, nothing of the fifth


def test_a_tiny_flac_whose_late_frame_states_8_hz_is_refused() -> None:
    """657 bytes: forty 16 kHz frames, then 65,535 samples at 8 Hz (2.3 hours, 267 MB of PCM)."""
    data = flac_stream([FlacFrame(65535)] * 40 + [FlacFrame(65535, sample_rate=8)])
    assert len(data) < 1000
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.details == {"reason": "sample_rate", "sample_rate": 8}


@pytest.mark.parametrize(
    ("frames", "rate", "refused"),
    [
        ([FlacFrame(4096)], 192000, 192000),
        ([FlacFrame(4096)] * 2 + [FlacFrame(4096, sample_rate=655350)], 16000, 655350),
    ],
    ids=["streaminfo", "midway"],
)
def test_a_sample_rate_above_voice_recording_is_refused(
    frames: list[FlacFrame], rate: int, refused: int
) -> None:
    """Above 96 kHz a file costs more CPU for the same seconds, at open or in a later frame."""
    data = flac_stream(frames, sample_rate=rate)
    details = {"reason": "sample_rate", "sample_rate": refused}
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.details == details
    assert _decode_until_refused(data)[1].details == details


def test_the_limits_themselves_are_accepted() -> None:
    """96 kHz, 8 channels and FLAC's longest block at 8 kHz (8.2 s in one frame) all decode."""
    assert (probe.MAX_SAMPLE_RATE, probe.MAX_CHANNELS) == (96000, 8)
    info = inspect_audio(io.BytesIO(flac_stream([FlacFrame(4096)], sample_rate=96000, channels=8)))
    assert (info.sample_rate, info.channels) == (96000, 8)
    longest = flac_stream([FlacFrame(65535)] * 2, sample_rate=8000)
    chunks = list(decode_pcm(io.BytesIO(longest)))
    assert sum(map(len, chunks)) == pytest.approx(2 * 65535 * 2 * 2, rel=0.01)
    assert max(map(len, chunks)) <= probe.MAX_FRAME_SECONDS * 16000 * 2


def test_more_channels_than_a_recording_has_are_refused() -> None:
    """A WAV of 10 channels is refused before decoding."""
    output = io.BytesIO()
    with wave.open(output, "wb") as writer:
        writer.setnchannels(10)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(bytes(16000 * 2 * 10))
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(output.getvalue()))
    assert caught.value.details == {"reason": "channels", "channels": 10}


def test_no_decoded_frame_may_hold_more_than_max_frame_seconds() -> None:
    """A frame longer than the bound is refused before it is counted or resampled.

    FLAC's blocks stop short of the bound; a Matroska block of raw PCM does not.
    """
    data = pcm_blocks_in_matroska([0.5, 0.5, 11.0], sample_rate=8000)
    with pytest.raises(AudioDecodeError) as caught:
        inspect_audio(io.BytesIO(data))
    assert caught.value.details == {"reason": "corrupt", "frame_seconds": 11.0}
    chunks, error = _decode_until_refused(data)
    assert error.details["frame_seconds"] == 11.0
    assert sum(map(len, chunks)) <= 1.0 * 16000 * 2  # the two half seconds, resampled
