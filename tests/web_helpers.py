"""Page scripts and a poll loop shared by the camera-widget browser tests (editor and upload)."""
from __future__ import annotations

import time
from typing import Any, Sequence

# Adds a node of type arguments[0] at (arguments[1], arguments[2]) with the canvas at 1:1, returns its id.
CREATE = """
const [type, x, y] = arguments;
const n = LiteGraph.createNode(type);
n.pos = [x, y];
app.graph.add(n);
app.canvas.ds.offset = [0, 0];
app.canvas.ds.scale = 1;
app.graph.setDirtyCanvas(true, true);
return n.id;"""

# null while a preview is scheduled or in flight, else the editor's status
SETTLED = """
const n = app.graph.getNodeById(arguments[0]);
const e = n && n.sanawmEditor;
if (!e) return 'no-editor';
return (!e.pending && e.lastKey === JSON.stringify(e.source.params(n))) ? e.status : null;"""


def wait_for(drv, script: str, *args: Any, timeout: float = 20.0, what: str = "the page",
             busy: Sequence[Any] = (None, "pending")) -> Any:
    """Re-runs `script` in the page every 0.1 s until it returns a value not in `busy`, and returns that."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = drv.execute_script(script, *args)
        if value not in busy:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not settle")
