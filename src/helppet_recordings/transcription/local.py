"""LocalTranscriber: offline speech recognition with PocketSphinx (extra ``local-transcriber``)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from helppet_recordings.audio.probe import decode_pcm
from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.transcription._languages import configured_language
from helppet_recordings.transcription._options import positive_seconds
from helppet_recordings.transcription.base import Transcript, TranscriptionInput
from helppet_recordings.transcription.chunking import split_at_silences
from helppet_recordings.transcription.errors import TranscriberConfigurationError

try:
    import pocketsphinx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("pocketsphinx", "local-transcriber") from exc
if importlib.util.find_spec("av") is None:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("av", "local-transcriber")

__all__ = ["LocalTranscriber"]

SAMPLE_RATE: Final = 16_000
_BYTES_PER_SECOND: Final = SAMPLE_RATE * 2
_FILLER_PREFIXES: Final = ("<", "[", "+")


class LocalTranscriber:
    """Speech to text on this machine, with no network and nothing downloaded.

    PocketSphinx recognises US English with the acoustic model, dictionary
    and language model its wheel ships (``decoder_options`` can point
    ``hmm``, ``dict`` and ``lm`` at other models, with ``language``, the tag
    reported, to match; a value that is no language tag raises
    ``TranscriberConfigurationError``). The audio is decoded to 16 kHz mono
    PCM and recognised in utterances of at most ``max_utterance_seconds``,
    each cut at the quietest point of its last ``search_seconds`` so that
    words are not split.

    ``confidence`` is the mean posterior probability of the recognised words
    from the decoder's lattice (None when nothing was recognised, or when
    ``decoder_options`` turn the lattice pass off with ``bestpath=False``).
    ``decoder_options`` may not set ``samprate``: the audio is always
    resampled to 16 kHz, the rate of the bundled model. Narrowband audio
    (8 kHz telephony, AMR-NB) is upsampled, and recognised poorly by it.
    Accuracy is far below a cloud service: use it for development,
    demonstrations and deployments that must not send audio out. It runs
    at about real time on one core: longer recordings need a longer worker
    lease.

    The model is loaded once, when the transcriber is built (about a second);
    calls are serialised by a lock, so one instance may be shared by threads.
    """

    name: ClassVar[str] = "local-pocketsphinx"

    def __init__(
        self,
        *,
        language: str = "en-US",
        max_utterance_seconds: float = 20.0,
        search_seconds: float = 5.0,
        decoder_options: Mapping[str, Any] | None = None,
    ) -> None:
        max_utterance_seconds = positive_seconds(max_utterance_seconds, "max_utterance_seconds")
        if not positive_seconds(search_seconds, "search_seconds") < max_utterance_seconds:
            msg = "search_seconds must be below max_utterance_seconds"
            raise TranscriberConfigurationError(msg, parameter="search_seconds")
        self._language = configured_language(language)
        options = {"loglevel": "FATAL", **(decoder_options or {})}
        if "samprate" in options:
            msg = "The decoder always reads 16 kHz PCM (the audio is resampled): drop samprate"
            raise TranscriberConfigurationError(msg)
        try:
            self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, **options)
        except (RuntimeError, ValueError, KeyError) as exc:
            msg = "PocketSphinx could not load its model with these decoder options"
            raise TranscriberConfigurationError(msg) from exc
        self._max_bytes = int(max_utterance_seconds * _BYTES_PER_SECOND)
        self._search_bytes = int(search_seconds * _BYTES_PER_SECOND)
        self._with_posteriors = bool(self._decoder.config["bestpath"])
        self._lock = threading.Lock()

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Recognise the speech in ``audio``; raises ``AudioDecodeError`` if it does not decode."""
        texts: list[str] = []
        posteriors: list[float] = []
        with audio.open() as stream, self._lock:
            pcm = decode_pcm(stream, sample_rate=SAMPLE_RATE)
            for utterance in split_at_silences(
                pcm, max_bytes=self._max_bytes, search_bytes=self._search_bytes
            ):
                text, words = self._recognise(utterance)
                if text:
                    texts.append(text)
                posteriors.extend(words)
        confidence = None
        if posteriors and self._with_posteriors:
            confidence = min(1.0, max(0.0, sum(posteriors) / len(posteriors)))
        return Transcript(
            " ".join(texts), confidence=confidence, language=self._language, service=self.name
        )

    def _recognise(self, utterance: bytes) -> tuple[str, list[float]]:
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(utterance, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None or not hypothesis.hypstr:
            return "", []
        words = [
            float(segment.prob)
            for segment in decoder.seg()
            if not segment.word.startswith(_FILLER_PREFIXES)
        ]
        return hypothesis.hypstr, words
