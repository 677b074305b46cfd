"""Missing weights are found before Run, on real servers: the loaders' dropdowns list what is on disk plus marked
"(download from <repo>)" entries; a prompt whose weights are absent and not downloadable is refused at once
(HTTP 400, no hub retries) with ONE message for all loaders naming only the files that workflow needs and the
right cause (HF_HUB_OFFLINE set vs no network); and a download that fails half-way leaves nothing behind."""
from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.comfy_api import ComfyClient, ComfyError
from scripts.comfy_server import ComfyServer
from workflows.definitions import ASSETS, actions_workflow, fast_preview_workflow, tiny_overrides

pytestmark = pytest.mark.server
ASSET_DIR = Path(__file__).resolve().parents[1] / "workflows" / "assets"
LOADERS = {"SanaWMModelLoader": "model", "SanaWMTextEncoderLoader": "text_encoder", "SanaWMVAELoader": "vae",
           "SanaWMRefinerLoader": "repo"}
KNOWN_REPOS = {"Efficient-Large-Model/SANA-WM_bidirectional", "Efficient-Large-Model/SANA-WM_bidirectional-diffusers",
               "Efficient-Large-Model/SANA-WM_chunk_causal", "Efficient-Large-Model/SANA-WM_streaming",
               "Efficient-Large-Model/gemma-2-2b-it"}


def _tiny(wf: dict) -> dict:
    from sana_wm_core.testing.tiny import TINY_HEIGHT, TINY_WIDTH

    return tiny_overrides(wf, height=TINY_HEIGHT, width=TINY_WIDTH, frames=9, steps=1)


def _ids(wf: dict) -> dict[str, str]:
    return {node["class_type"]: nid for nid, node in wf.items()}


def _empty_server(tmp_path_factory, name: str, env: dict | None = None):
    """A real ComfyUI whose models/ folder is empty (the example assets in input/)."""
    base = tmp_path_factory.mktemp(name)
    srv = ComfyServer(base, env=env).start()
    for asset in ASSETS:
        shutil.copyfile(ASSET_DIR / asset, srv.base / "input" / asset)
    return srv


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory):
    srv = _empty_server(tmp_path_factory, "no_weights_offline")   # ComfyServer sets HF_HUB_OFFLINE=1
    yield srv
    srv.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again when the socket is: connections are refused


def _refusal(client: ComfyClient, wf: dict) -> tuple[dict, float]:
    t0 = time.time()
    with pytest.raises(ComfyError) as err:
        client.queue(wf)
    assert err.value.status == 400, err.value
    return err.value.details, time.time() - t0


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_dropdowns_list_local_weights_and_marked_downloads(comfy, offline_server):
    for node, name in LOADERS.items():
        here = comfy.choices(node, name)                       # tiny weights: every release is on disk
        assert here and not [c for c in here if "download" in c], (node, here)
        empty = ComfyClient(offline_server.url).choices(node, name)   # nothing on disk
        assert empty, node
        for choice in empty:
            assert choice.endswith(")") and " (download from " in choice, (node, choice)
            assert choice[:-1].split(" (download from ")[1] in KNOWN_REPOS, (node, choice)
    assert "SANA-WM_bidirectional" in comfy.choices("SanaWMModelLoader", "model")
    assert ("SANA-WM_bidirectional (download from Efficient-Large-Model/SANA-WM_bidirectional)"
            in ComfyClient(offline_server.url).choices("SanaWMModelLoader", "model"))


def test_offline_missing_weights_one_message_for_all_loaders(offline_server):
    client = ComfyClient(offline_server.url)
    wf = _tiny(actions_workflow())
    ids = _ids(wf)
    body, seconds = _refusal(client, wf)
    assert seconds < 3, f"the check took {seconds:.1f}s"
    message = body["error"]["message"]
    assert body["error"]["type"] == "sana_wm_weights_missing"
    assert "offline mode (HF_HUB_OFFLINE=1 is set)" in message, message
    assert message.count("\n  - node ") == 4, message                           # one message, one line a loader
    assert set(body["node_errors"]) == {ids[k] for k in LOADERS}, body["node_errors"]
    for needed in ("dit/sana_wm_1600m_720p.safetensors", "config.yaml", "vae/", "refiner/transformer/",
                   "refiner/connectors/", "refiner/text_encoder/", "models/text_encoders/gemma-2-2b-it/",
                   "SANA-WM Model Loader (Stage-1 DiT)", "Efficient-Large-Model/SANA-WM_bidirectional"):
        assert needed in message, (needed, message)
    # only what this workflow needs: no Pi3X (its node falls back to the FOV), no chunk-causal DiT
    assert "pi3x" not in message.lower() and "chunk_causal" not in message, message

    # a Stage-1-only workflow names no refiner; Pi3X without the fallback is named too
    quick = _tiny(fast_preview_workflow())
    quick[_ids(quick)["SanaWMEstimateIntrinsics"]]["inputs"]["fallback"] = False
    quick[_ids(quick)["SanaWMEstimateIntrinsics"]]["inputs"]["pi3x_checkpoint"] = "yyfz233/Pi3X (download)"
    body, _ = _refusal(client, quick)
    message = body["error"]["message"]
    assert "refiner" not in message and "models/pi3x/Pi3X/" in message and "model.safetensors" in message, message
    assert message.count("\n  - node ") == 4, message
    # the chunk-causal model: its own DiT and config, nothing of the bidirectional DiT
    wf = _tiny(fast_preview_workflow())
    wf[_ids(wf)["SanaWMModelLoader"]]["inputs"]["model"] = "SANA-WM_chunk_causal"
    message = _refusal(client, wf)[0]["error"]["message"]
    assert "dit/sana_wm_chunk_causal_1600m_720p.safetensors" in message and "dit/sana_wm_1600m_720p.safetensors" not in message
    # the streaming bundle: its training checkpoint
    wf[_ids(wf)["SanaWMModelLoader"]]["inputs"]["model"] = "SANA-WM_streaming"
    message = _refusal(client, wf)[0]["error"]["message"]
    assert "sana_dit/model.pt" in message and "dit/sana_wm_1600m_720p.safetensors" not in message, message


def test_without_network_the_check_says_so_at_once(tmp_path_factory):
    port = _closed_port()
    srv = _empty_server(tmp_path_factory, "no_weights_no_network",
                        env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    try:
        body, seconds = _refusal(ComfyClient(srv.url), _tiny(fast_preview_workflow()))
        message = body["error"]["message"]
        assert seconds < 3 and f"no network: 127.0.0.1:{port} cannot be reached" in message, (seconds, message)
        assert "HF_HUB_OFFLINE" not in message, message
    finally:
        srv.stop()


# A hub that lists files and serves the small ones, but whose weight files fail to download.
_SHA = "0123456789abcdef0123456789abcdef01234567"
_FILES = {"config.yaml": b"model: {}\n", "vae/config.json": b"{}", "dit/sana_wm_1600m_720p.safetensors": None,
          "vae/diffusion_pytorch_model.safetensors": None, "gemma/config.json": b"{}"}


class _FailingHub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, code: int, body: bytes = b"", **headers) -> None:
        self.send_response(code)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in {"X-Repo-Commit": _SHA, **headers}.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if "/tree/" in self.path:
            listing = [{"type": "file", "path": p, "oid": "0" * 40, "size": len(b or b"x" * 4000)}
                       for p, b in _FILES.items()]
            return self._answer(200, json.dumps(listing).encode(), Content_Type="application/json")
        if self.path.startswith("/api/models/"):
            info = {"id": self.path.split("/api/models/")[1].split("/revision")[0], "sha": _SHA,
                    "siblings": [{"rfilename": p} for p in _FILES]}
            return self._answer(200, json.dumps(info).encode(), Content_Type="application/json")
        if "/resolve/" in self.path:
            body = _FILES.get(self.path.split(f"/resolve/{_SHA}/")[-1].split("/resolve/main/")[-1])
            if body is not None:
                return self._answer(200, body, ETag='"small"')
            if self.command == "HEAD":   # the weight file exists...
                return self._answer(200, Content_Length="4000", ETag='"big"')
            return self._answer(403, b"forbidden")   # ...but its download fails
        return self._answer(404, b"{}")


def test_failed_download_leaves_no_lock_or_partial_folder(tmp_path_factory):
    hub = ThreadingHTTPServer(("127.0.0.1", 0), _FailingHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    srv = _empty_server(tmp_path_factory, "failing_download",
                        env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_port}"})
    try:
        client = ComfyClient(srv.url)
        wf = _tiny(fast_preview_workflow())
        wf[_ids(wf)["SanaWMEstimateIntrinsics"]]["inputs"].update(method="fov", pi3x_checkpoint="yyfz233/Pi3X (download)")
        res = client.run(wf, timeout=300)   # downloadable: validation lets it run
        assert res.status == "error", res.status
        assert "download failed" in json.dumps(res.error), res.error
        models = srv.base / "models"
        assert _files_under(models) == [], _files_under(models)   # small files fetched before the failure too
        assert not [p for p in models.rglob("*") if ".download-" in p.name or p.name == ".cache"]
    finally:
        srv.stop()
        hub.shutdown()
