"""The README stays true: its weight table is the one the loaders' errors use, and it shows the two commands."""
from pathlib import Path

from sana_wm_core.weights.known import markdown_table
from workflows.definitions import WORKFLOWS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_weight_table_is_the_known_weights_table():
    assert markdown_table() in README


def test_readme_shows_main_commands_and_every_workflow():
    head = README[:1500]
    assert "make demo" in head and "make test" in head
    for name in WORKFLOWS:
        assert f"`{name}" in README, name


def test_readme_install_line_clones_the_repository_pyproject_names():
    import re
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    url = pyproject["project"]["urls"]["Repository"]
    assert re.search(rf"git clone {re.escape(url)}(\.git)? ComfyUI-SANA-WM", README), url
    assert "<this repository>" not in README


def test_readme_node_table_uses_the_display_names():
    """Every row of the node table is a name the node search shows, and every node has a row."""
    import re

    nodes = Path(__file__).resolve().parents[1] / "nodes"
    shown = set()
    for f in nodes.glob("*.py"):
        shown |= set(re.findall(r'^            display_name="(SANA-WM [^"]+)"', f.read_text(), re.M))
    table = README[README.index("## Nodes"):README.index("## Weights")]
    rows = set(re.findall(r"^\| (SANA-WM [^|]+?) \|", table, re.M))
    assert rows == shown, (sorted(rows - shown), sorted(shown - rows))
