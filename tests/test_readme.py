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
