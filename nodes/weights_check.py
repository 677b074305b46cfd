"""Missing weights found before Run: what each loader of a prompt needs on disk, and one message for all of them.

The loaders' dropdowns list what is present in ComfyUI's model folders plus `name (download from owner/repo)`
entries for the known releases that are not (`loader_options`). At POST /prompt (nodes/prompt_guard.py)
`weights_errors` asks every loader of the prompt which files it needs that are not on disk; when some are
missing and cannot be downloaded now (offline mode, no network: `sana_wm_core.weights.hub.download_blocker`,
answered at once) the prompt is refused with ONE message listing, per loader, only the files that workflow
needs and where they go. Missing files that can be downloaded are not an error: the loader fetches them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..sana_wm_core.weights.hub import choice_for_download, download_blocker, parse_choice
from ..sana_wm_core.weights.known import known_weight

WEIGHTS_ERROR = "sana_wm_weights_missing"


@dataclass(frozen=True)
class Need:
    """Files one loader needs: `files` relative to `folder` (under ComfyUI's models/), from `hub_repo`."""

    folder: str
    files: tuple[str, ...]
    hub_repo: str | None
    size: str = ""

    def line(self) -> str:
        where = f"models/{self.folder}/"
        source = f" from the Hugging Face repo {self.hub_repo}" if self.hub_repo else ""
        size = f" ({self.size})" if self.size else ""
        return f"{', '.join(self.files)}{size} into {where}{source}"


def _dirs(kind: str) -> list[Path]:
    import folder_paths

    if kind not in folder_paths.folder_names_and_paths:
        return [Path(folder_paths.models_dir) / kind]
    return [Path(p) for p in folder_paths.get_folder_paths(kind)]


def _present(kind: str, name: str, marker: Callable[[Path], bool]) -> bool:
    return any(marker(d / name) for d in _dirs(kind))


def loader_options(kind: str, known: dict[str, str], marker: Callable[[Path], bool]) -> list[str]:
    """Dropdown entries: every folder under models/<kind> that `marker` accepts, then one
    `name (download from repo)` entry per known release that is not on disk."""
    local = []
    for base in _dirs(kind):
        if base.is_dir():
            local += [n for n in sorted(os.listdir(base)) if marker(base / n)]
    local = list(dict.fromkeys(local))
    missing = [choice_for_download(name, repo) for name, repo in known.items() if name not in local]
    return local + missing


def is_known_choice(value, known: dict[str, str]) -> bool:
    """A value that names a known release (bare name, hub id or download entry): valid whether or not its
    files are on disk (saved workflows store the bare name); absence is `weights_errors`' to report."""
    if not isinstance(value, str):
        return False
    name, repo = parse_choice(value)
    return (name in known and (repo is None or known[name] == repo)) or value in known.values()


def folder_and_repo(value: str, known: dict[str, str]) -> tuple[str, str | None]:
    """(folder name under models/<kind>, hub repo or None) for a dropdown value."""
    name, repo = parse_choice(value)
    if repo is None and name.count("/") == 1:      # a bare hub id: its folder is the repo's name
        return name.split("/")[1], name
    return name, repo or known.get(name)


def _text(inputs: dict, name: str) -> str | None:
    value = inputs.get(name)
    return value if isinstance(value, str) else None     # a link or a missing value: not judged here


def _stage1_needs(inputs: dict) -> list[Need]:
    from .models import _STAGE1_KNOWN, _has_stage1

    choice = _text(inputs, "model")
    if choice is None or (_text(inputs, "path_or_hub_id") or "").strip():
        return []
    folder, repo = folder_and_repo(choice, _STAGE1_KNOWN)
    complete = lambda p: _has_stage1(p) and ((p / "config.yaml").is_file() or (p / "transformer").is_dir()  # noqa: E731
                                             or (p / "sana_dit" / "model.pt").is_file())
    if _present("sana_wm", folder, complete):
        return []
    if "diffusers" in folder:
        return [Need(f"sana_wm/{folder}", ("transformer/", "scheduler/"), repo, "~10 GB")]
    if "streaming" in folder:
        return [Need(f"sana_wm/{folder}", ("sana_dit/model.pt",), repo, "~10 GB+ (the DiT's training checkpoint)")]
    entry = known_weight("chunk_causal" if "chunk_causal" in folder else "dit")
    files = entry.hub_paths if entry.key == "chunk_causal" else entry.hub_paths + ("config.yaml",)
    return [Need(f"sana_wm/{folder}", files, repo, entry.size)]


def _vae_needs(inputs: dict) -> list[Need]:
    from ..sana_wm_core.vae import CAUSAL_VAE_DIR
    from .models import _STAGE1_KNOWN, _has_vae

    choice = _text(inputs, "vae")
    if choice is None or (_text(inputs, "path_or_hub_id") or "").strip():
        return []
    folder, repo = folder_and_repo(choice, _STAGE1_KNOWN)
    if _present("sana_wm", folder, _has_vae):
        return []
    return [Need(f"sana_wm/{folder}", (f"{CAUSAL_VAE_DIR}/" if "streaming" in folder else "vae/",), repo,
                 known_weight("vae").size)]


def _text_encoder_needs(inputs: dict) -> list[Need]:
    from .models import GEMMA2

    choice = _text(inputs, "text_encoder")
    if choice is None or (_text(inputs, "path_or_hub_id") or "").strip():
        return []
    folder, repo = folder_and_repo(choice, {"gemma-2-2b-it": GEMMA2})
    if _present("text_encoders", folder, lambda p: (p / "config.json").is_file()):
        return []
    return [Need(f"text_encoders/{folder}", ("config.json, weights and tokenizer",), repo,
                 known_weight("gemma2").size)]


def _refiner_needs(inputs: dict) -> list[Need]:
    from .refine import REFINER_KNOWN, is_refiner_folder

    choice = _text(inputs, "repo")
    if choice is None or (_text(inputs, "path_or_hub_id") or "").strip():
        return []
    folder, repo = folder_and_repo(choice, REFINER_KNOWN)
    files = []
    if not _present("sana_wm", folder, is_refiner_folder):
        files += ["refiner/transformer/", "refiner/connectors/"]
    own_gemma = not (_text(inputs, "gemma3_folder") or "").strip()
    if own_gemma and not _present("sana_wm", folder, lambda p: (p / "refiner" / "text_encoder" / "config.json")
                                  .is_file() or (p / "gemma3_12b" / "config.json").is_file()):
        files.append("refiner/text_encoder/")
    if not files:
        return []
    size = known_weight("refiner").size + (" + " + known_weight("refiner_text_encoder").size if own_gemma else "")
    return [Need(f"sana_wm/{folder}", tuple(files), repo, size)]


def _pi3x_needs(inputs: dict) -> list[Need]:
    """Pi3X only when the node must use it: method pi3x without the exif/fov fallback."""
    from ..sana_wm_core.pi3x import HUB_CHOICE, PI3X_FILENAME, PI3X_REPO_ID

    if inputs.get("method") != "pi3x" or inputs.get("fallback") is not False:
        return []
    if _text(inputs, "pi3x_checkpoint") not in (HUB_CHOICE, PI3X_REPO_ID):
        return []   # a file picked from models/pi3x: the dropdown check covers it
    if _present("pi3x", "Pi3X", lambda p: (p / PI3X_FILENAME).is_file()):
        return []
    return [Need("pi3x/Pi3X", (PI3X_FILENAME,), PI3X_REPO_ID, known_weight("pi3x").size)]


NEEDS: dict[str, Callable[[dict], list[Need]]] = {
    "SanaWMModelLoader": _stage1_needs,
    "SanaWMVAELoader": _vae_needs,
    "SanaWMTextEncoderLoader": _text_encoder_needs,
    "SanaWMRefinerLoader": _refiner_needs,
    "SanaWMEstimateIntrinsics": _pi3x_needs,
}


def weights_errors(prompt: dict, display_names: dict[str, str] | None = None) -> tuple[dict, str]:
    """(ComfyUI-shaped node_errors, the one message) for the loaders of `prompt` whose files are missing and
    cannot be downloaded now; ({}, "") when every loader can run."""
    missing: list[tuple[str, dict, Need]] = []
    for nid, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        check = NEEDS.get(str(node.get("class_type")))
        if check is not None:
            missing += [(str(nid), node, need) for need in check(node["inputs"])]
    if not missing:
        return {}, ""
    blocker = download_blocker()
    stuck = [m for m in missing if m[2].hub_repo is None or blocker]
    if not stuck:
        return {}, ""
    names = display_names or {}
    lines = [f"SANA-WM weights this workflow needs are missing and cannot be downloaded now "
             f"({blocker or 'no Hugging Face repo is known for them'}):"]
    errors: dict = {}
    for nid, node, need in stuck:
        kind = node["class_type"]
        line = f"  - node {nid} ({names.get(kind, kind)}): {need.line()}"
        lines.append(line)
        errors.setdefault(nid, {"errors": [], "dependent_outputs": [], "class_type": kind})["errors"].append(
            {"type": WEIGHTS_ERROR, "message": line.strip()[2:], "details": need.line(),
             "extra_info": {"folder": f"models/{need.folder}", "files": list(need.files),
                            "hub_repo": need.hub_repo}})
    lines.append("Copy the files there (huggingface-cli download <repo> --include ... --local-dir <folder>), or "
                 "allow downloads and queue again.")
    return errors, "\n".join(lines)
