"""locate_repo / locate_file: local paths, ComfyUI search dirs, the hub path and the not-found message.

Nothing here reaches the network: offline cases must not even call huggingface_hub (its download
functions are replaced by ones that fail the test), and the one download case uses a stand-in for
the hub that writes files locally and drives the progress bar the way huggingface_hub does.
"""
from __future__ import annotations

import socket
from pathlib import Path

import huggingface_hub
import pytest

from sana_wm_core.weights import (KNOWN_WEIGHTS, WeightsNotFoundError, known_weight, locate_file, locate_repo,
                                  markdown_table)
from sana_wm_core.weights.locate import _tqdm_forwarder

BOGUS = "nobody-sanawm-test/no-such-repo-0xdead"
DIT = "dit/sana_wm_1600m_720p.safetensors"


@pytest.fixture()
def no_network(monkeypatch):
    """Fail the test on any hub call or non-loopback connection."""
    def forbidden(*a, **k):
        raise AssertionError("the hub must not be contacted")

    real_connect = socket.socket.connect

    def guarded(self, addr):
        if isinstance(addr, tuple) and addr[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {addr}")
        return real_connect(self, addr)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", forbidden)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture()
def reachable_hub(monkeypatch):
    """The hub endpoint is a listening loopback socket: the pre-download network check passes (the stand-in
    download functions of each test do the rest)."""
    from huggingface_hub import constants

    from sana_wm_core.weights import hub

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setattr(hub, "_probe", {})
    yield
    listener.close()


def _beside(local_dir: str, dest: Path) -> bool:
    """The download went to a hidden temporary folder next to `dest` (moved into place when complete)."""
    tmp = Path(local_dir)
    return tmp.parent == dest.parent and tmp.name.startswith(f".{dest.name}.download-")


@pytest.fixture()
def dirs(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "models_a" / "sana_wm", tmp_path / "models_b" / "sana_wm"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    return a, b


def _repo(folder: Path, with_dit: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("model: {}\n")
    if with_dit:
        (folder / DIT).parent.mkdir(parents=True, exist_ok=True)
        (folder / DIT).write_bytes(b"x")
    return folder


def test_explicit_path_is_returned(tmp_path, no_network):
    repo = _repo(tmp_path / "anywhere" / "SANA-WM_bidirectional")
    assert locate_repo(str(repo), search_dirs=[]) == repo.resolve()
    assert locate_repo(repo, search_dirs=[], required=[DIT]) == repo.resolve()


def test_name_is_found_in_a_later_search_dir(dirs, no_network):
    a, b = dirs
    repo = _repo(b / "SANA-WM_bidirectional")
    found = locate_repo("SANA-WM_bidirectional", search_dirs=[a, b], required=[DIT])
    assert found == repo.resolve()


def test_models_relative_name_and_repo_name_both_resolve(dirs, no_network):
    a, _ = dirs
    repo = _repo(a / "SANA-WM_bidirectional")
    models = a.parent
    assert locate_repo("sana_wm/SANA-WM_bidirectional", search_dirs=[models]) == repo.resolve()
    # A different local name falls back to the hub repo's own folder name.
    assert locate_repo("my-copy", search_dirs=[a], hub_repo="Efficient-Large-Model/SANA-WM_bidirectional",
                       allow_download=False) == repo.resolve()
    # The repo id as the name: its folder is the repo's own name.
    assert locate_repo("Efficient-Large-Model/SANA-WM_bidirectional", search_dirs=[a],
                       hub_repo="Efficient-Large-Model/SANA-WM_bidirectional") == repo.resolve()
    # hf:// addresses map to <repo name>/<sub path> under the search dirs.
    assert locate_repo("hf://Efficient-Large-Model/SANA-WM_bidirectional/dit", search_dirs=[a]) == \
        (repo / "dit").resolve()


def test_incomplete_folder_is_skipped_and_reported(dirs, no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = dirs
    _repo(a / "SANA-WM_bidirectional", with_dit=False)
    with pytest.raises(WeightsNotFoundError) as info:
        locate_repo("SANA-WM_bidirectional", search_dirs=[a, b], required=[DIT],
                    hub_repo="Efficient-Large-Model/SANA-WM_bidirectional", allow_patterns=["dit/*"])
    msg = str(info.value)
    assert f"exists but lacks {DIT}" in msg
    assert '--include "dit/*"' in msg
    assert f'--local-dir "{a / "SANA-WM_bidirectional"}"' in msg  # completes the folder it found
    assert "10 GB" in msg and "ComfyUI/models/sana_wm/SANA-WM_bidirectional/" in msg


def test_offline_bogus_repo_lists_every_place_and_how_to_get_it(dirs, no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = dirs
    with pytest.raises(WeightsNotFoundError) as info:
        locate_repo("no-such-repo-0xdead", search_dirs=[a, b], hub_repo=BOGUS)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    for d in (a, b):
        assert str(d / "no-such-repo-0xdead") in msg
    assert BOGUS in msg and "offline" in msg
    assert f"huggingface-cli download {BOGUS}" in msg
    assert f'--local-dir "{a / "no-such-repo-0xdead"}"' in msg
    assert "ComfyUI folder:" in msg
    assert err.hub_repo == BOGUS and len(err.searched) == 3


def test_downloads_switched_off_and_unknown_repo(dirs, no_network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    a, _ = dirs
    with pytest.raises(WeightsNotFoundError, match="downloads are switched off"):
        locate_repo("gemma-2-2b-it", search_dirs=[a], hub_repo="Efficient-Large-Model/gemma-2-2b-it",
                    allow_download=False)
    with pytest.raises(WeightsNotFoundError, match="no Hugging Face repo is known"):
        locate_repo("mystery", search_dirs=[a])


def test_bad_names_are_value_errors():
    with pytest.raises(ValueError, match="empty"):
        locate_repo("  ", search_dirs=[])
    with pytest.raises(ValueError, match="hf://owner/repo"):
        locate_repo("hf://justone", search_dirs=[])


def test_hub_download_goes_to_the_first_search_dir_with_progress(dirs, reachable_hub, monkeypatch):
    """Stand-in hub: writes the allowed files into local_dir and reports bytes through tqdm_class."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    a, b = dirs
    calls = []

    def fake_snapshot_download(*, repo_id, allow_patterns, local_dir, tqdm_class):
        calls.append((repo_id, allow_patterns, local_dir))
        _repo(Path(local_dir))
        bar = tqdm_class(total=1000, unit="B", initial=0)
        for _ in range(4):
            bar.update(250)
        bar.close()
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    seen: list[tuple[int, int]] = []
    got = locate_repo("SANA-WM_bidirectional", search_dirs=[a, b], required=[DIT],
                      hub_repo="Efficient-Large-Model/SANA-WM_bidirectional", allow_patterns=["dit/*", "vae/*"],
                      progress=lambda done, total: seen.append((done, total)))
    assert got == a / "SANA-WM_bidirectional" and (got / DIT).is_file()
    assert [c[:2] for c in calls] == [("Efficient-Large-Model/SANA-WM_bidirectional", ["dit/*", "vae/*"])]
    assert _beside(calls[0][2], a / "SANA-WM_bidirectional") and not Path(calls[0][2]).exists()
    assert sorted(p.name for p in a.iterdir()) == ["SANA-WM_bidirectional"]
    assert seen == [(250, 1000), (500, 1000), (750, 1000), (1000, 1000)]
    # Found locally now: no second download.
    monkeypatch.setattr(huggingface_hub, "snapshot_download", None)
    assert locate_repo("SANA-WM_bidirectional", search_dirs=[a, b], required=[DIT]) == got.resolve()


def test_repo_id_name_downloads_into_a_folder_named_after_the_repo(dirs, reachable_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    a, _ = dirs
    targets = []

    def fake_snapshot_download(*, repo_id, allow_patterns, local_dir, tqdm_class):
        targets.append(local_dir)
        _repo(Path(local_dir))
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    got = locate_repo("Efficient-Large-Model/SANA-WM_bidirectional", search_dirs=[a],
                      hub_repo="Efficient-Large-Model/SANA-WM_bidirectional", required=[DIT])
    assert len(targets) == 1 and _beside(targets[0], a / "SANA-WM_bidirectional")
    assert got == a / "SANA-WM_bidirectional" and (got / DIT).is_file()


def test_failed_download_keeps_the_cause(dirs, reachable_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    a, _ = dirs

    def broken(**kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    with pytest.raises(WeightsNotFoundError, match="download failed \\(OSError: connection refused\\)") as info:
        locate_repo("Pi3X", search_dirs=[a], hub_repo="yyfz233/Pi3X")
    assert isinstance(info.value.__cause__, OSError)
    assert "ComfyUI/models/pi3x/" in str(info.value)
    assert list(a.iterdir()) == [], "a failed download leaves no folder behind"


def test_locate_file_local_and_offline(dirs, no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = dirs
    repo = _repo(b / "SANA-WM_bidirectional")
    rel = f"SANA-WM_bidirectional/{DIT}"
    assert locate_file(rel, search_dirs=[a, b]) == (repo / DIT).resolve()
    with pytest.raises(WeightsNotFoundError) as info:
        locate_file("SANA-WM_bidirectional/config_missing.yaml", search_dirs=[a, b],
                    hub_repo="Efficient-Large-Model/SANA-WM_bidirectional")
    msg = str(info.value)
    assert str(a / "SANA-WM_bidirectional/config_missing.yaml") in msg
    assert '--include "config_missing.yaml"' in msg and "offline" in msg


def test_progress_forwarder_survives_thread_map():
    """huggingface_hub also hands tqdm_class to tqdm's thread_map for its per-file bar."""
    from tqdm.contrib.concurrent import thread_map

    seen = []
    cls = _tqdm_forwarder(lambda d, t: seen.append((d, t)))
    assert thread_map(lambda x: x * 2, range(5), tqdm_class=cls, max_workers=2) == [0, 2, 4, 6, 8]
    assert seen == []  # item counts are not bytes
    bar = cls(total=10, unit="B")
    bar.update(4)
    assert seen == [(4, 10)]


def test_known_weights_table():
    keys = [e.key for e in KNOWN_WEIGHTS]
    assert len(keys) == len(set(keys))
    for key in ("dit", "vae", "refiner", "refiner_text_encoder", "config", "sana_wm_diffusers", "gemma2", "pi3x"):
        entry = known_weight(key)
        assert "/" in entry.hub_repo and entry.models_folder and entry.size
    assert known_weight("refiner_text_encoder").size == "46 GB"
    assert known_weight("dit").local_path() == "sana_wm/SANA-WM_bidirectional/dit/sana_wm_1600m_720p.safetensors"
    table = markdown_table()
    assert all(e.hub_repo in table for e in KNOWN_WEIGHTS) and table.count("\n") == len(KNOWN_WEIGHTS) + 1
    with pytest.raises(ValueError, match="known:"):
        known_weight("nope")
