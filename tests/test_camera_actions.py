"""Action DSL: classic == diffusers (bit for bit after the float32 cast), game == the hand-traced cases in
docs/dsl_cases.md, and every malformed string fails with a message naming the segment and the rule."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from diffusers.pipelines.sana_wm import cam_utils as oracle

from sana_wm_core.camera import action_string_to_c2w, parse_action_string

GAME = dict(translation_speed=0.025, rotation_speed_deg=0.6, mapping="game")


def _random_valid_action(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.15:
            keys = rng.choice(["none", "NONE", "None", ""])
        else:
            keys = "".join(rng.choice("wasdijklWASDIJKL") for _ in range(rng.randint(1, 4)))
        pad = rng.choice(["", " ", "\t", "  "])
        parts.append(f"{pad}{keys}{pad}-{pad}{rng.randint(1, 60)}{pad}")
    seps = [rng.choice([",", "\uff0c", " , "]) for _ in parts[1:]]
    out = parts[0]
    for sep, part in zip(seps, parts[1:]):
        out += sep + part
    return out


def _ry(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rx(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


# ---------------------------------------------------------------------------------------- classic parity

def test_classic_matches_diffusers_on_random_strings():
    rng = random.Random(1234)
    for _ in range(150):
        action = _random_valid_action(rng)
        ts, rot = round(rng.uniform(0.0, 0.2), 4), round(rng.uniform(0.0, 5.0), 3)
        ours = action_string_to_c2w(action, ts, rot)
        ref = oracle.action_string_to_c2w(action, translation_speed=ts, rotation_speed_deg=rot)
        assert ours.dtype == np.float64 and ours.shape == ref.shape
        assert np.array_equal(ours.astype(np.float32), ref), action


def test_classic_matches_diffusers_on_long_pitch_heavy_strings():
    for action in ["w-80,jw-40,w-40,lw-60,w-100", "i-200,k-400,ijw-50", "ik-10,kkk-90,dl-30,as-7"]:
        ours = action_string_to_c2w(action, 0.055, 1.2)
        ref = oracle.action_string_to_c2w(action, translation_speed=0.055, rotation_speed_deg=1.2)
        assert np.array_equal(ours.astype(np.float32), ref)


def test_same_strings_accepted_and_rejected_as_diffusers():
    """Random junk over the DSL's alphabet: both accept (with equal poses) or both raise ValueError."""
    rng = random.Random(7)
    alphabet = "wasdijklxnoeWN-,\uff0c 0123.\t+"
    accepted = rejected = 0
    for _ in range(600):
        text = list(_random_valid_action(rng)[:14])
        for _ in range(rng.randint(0, 2)):  # mutate a valid string: replace, insert or delete a character
            at = rng.randrange(len(text) + 1)
            op = rng.choice("rid")
            if op == "i" or not text:
                text.insert(at, rng.choice(alphabet))
            elif op == "r":
                text[min(at, len(text) - 1)] = rng.choice(alphabet)
            else:
                del text[min(at, len(text) - 1)]
        text = "".join(text)
        try:
            ref = oracle.action_string_to_c2w(text)
        except ValueError:
            with pytest.raises(ValueError):
                action_string_to_c2w(text)
            rejected += 1
            continue
        assert np.array_equal(action_string_to_c2w(text).astype(np.float32), ref), repr(text)
        accepted += 1
    assert accepted > 100 and rejected > 100, (accepted, rejected)


def test_grammar_quirks():
    a = action_string_to_c2w("W-2 , D-2\uff0cnone-1")
    b = action_string_to_c2w("w-2,d-2,none-1")
    assert np.array_equal(a, b) and a.shape == (6, 4, 4)
    assert np.array_equal(action_string_to_c2w("-3"), action_string_to_c2w("none-3"))
    assert np.array_equal(action_string_to_c2w("ddw-4"), action_string_to_c2w("wd-4"))
    assert np.array_equal(action_string_to_c2w("dw-4", **GAME), action_string_to_c2w("wDd-4", **GAME))


def test_parse_segments_are_json_friendly():
    segs = parse_action_string(" dW-3 ,none-2\uff0cjj-1")
    assert segs == [
        {"index": 1, "text": "dW-3", "keys": ["d", "w"], "frames": 3, "start": 0},
        {"index": 2, "text": "none-2", "keys": [], "frames": 2, "start": 3},
        {"index": 3, "text": "jj-1", "keys": ["j"], "frames": 1, "start": 5},
    ]
    import json
    assert json.loads(json.dumps(segs)) == segs


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("   \t", "empty"),
    ("x-5", "segment 1 ('x-5'): unknown keys ['x']"),
    ("w-3,wq-2", "segment 2 ('wq-2'): unknown keys ['q']"),
    ("w-0", "segment 1 ('w-0'): the frame count '0' must be a positive whole number"),
    ("w-", "segment 1 ('w-'): the frame count '' must be a positive"),
    ("w3", "segment 1 ('w3'): missing '-'"),
    ("w-1.5", "segment 1 ('w-1.5'): the frame count '1.5'"),
    ("w-2,,d-1", "segment 2 (''): empty segment"),
    ("w-2,", "segment 2 (''): empty segment"),
    ("w--3", "unknown keys ['-']"),
    ("w-60000,d-40001", "segment 2 ('d-40001'): the total length reaches 100001 frames, over the limit of 100000"),
])
def test_bad_strings_raise_clear_errors(text, needle):
    with pytest.raises(ValueError) as err:
        parse_action_string(text)
    assert needle in str(err.value)
    with pytest.raises(ValueError):
        action_string_to_c2w(text, mapping="game")


def test_bad_arguments():
    with pytest.raises(ValueError, match="mapping must be one of"):
        action_string_to_c2w("w-1", mapping="wasd")
    with pytest.raises(ValueError, match="translation_speed"):
        action_string_to_c2w("w-1", translation_speed=float("nan"))
    with pytest.raises(ValueError, match="rotation_speed_deg"):
        action_string_to_c2w("w-1", rotation_speed_deg=-1)


def test_exactly_100000_frames_is_allowed():
    assert parse_action_string("w-60000,none-40000")[-1]["start"] == 60000


# ------------------------------------------------------------------------------- dsl_cases.md, game map

def _t(pose):
    return pose[:3, 3]


def test_case1_forward():
    p = action_string_to_c2w("w-10", **GAME)
    assert p.shape == (11, 4, 4)
    np.testing.assert_allclose(_t(p[1]), [0, 0, 0.024999974], atol=1e-6)
    np.testing.assert_allclose(_t(p[5]), [0, 0, 0.1249999], atol=1e-6)
    np.testing.assert_allclose(_t(p[10]), [0, 0, 0.24999975], atol=1e-6)
    np.testing.assert_allclose(p[10, :3, :3], np.eye(3), atol=1e-12)


def test_case2_forward_fast_both_maps():
    for mapping in ("game", "classic"):
        p = action_string_to_c2w("w-10", 0.055, 1.2, mapping)
        np.testing.assert_allclose(_t(p[1]), [0, 0, 0.054999944], atol=1e-6)
        np.testing.assert_allclose(_t(p[10]), [0, 0, 0.5499995], atol=1e-6)


def test_case3_yaw():
    p = action_string_to_c2w("d-10", **GAME)
    np.testing.assert_allclose(p[10, :3, :3], _ry(6), atol=1e-6)
    np.testing.assert_allclose(_t(p[10]), 0, atol=1e-12)
    np.testing.assert_allclose(p[10, 0, 2], 0.104528464, atol=1e-6)
    legacy = action_string_to_c2w("l-10", 0.05, 1.2, "classic")
    np.testing.assert_allclose(legacy[10, :3, :3], [[0.9781476, 0, 0.20791169], [0, 1, 0],
                                                    [-0.20791169, 0, 0.9781476]], atol=1e-6)


def test_case4_coast_after_release():
    p = action_string_to_c2w("w-10,none-5", **GAME)
    assert p.shape == (16, 4, 4)
    np.testing.assert_allclose(p[10, 2, 3], 0.24999975, atol=1e-6)
    np.testing.assert_allclose(p[11, 2, 3], 0.27348506, atol=1e-6)
    np.testing.assert_allclose(p[15, 2, 3], 0.35403353, atol=1e-6)
    speeds = np.diff(p[10:, 2, 3])
    np.testing.assert_allclose(speeds, [0.023485327, 0.022062423, 0.020725728, 0.019470020, 0.018290391],
                               atol=1e-6)
    np.testing.assert_allclose(p[:, :3, :3], np.broadcast_to(np.eye(3), (16, 3, 3)), atol=1e-12)


def test_case5_strafe_forward():
    p = action_string_to_c2w("jw-10", **GAME)
    np.testing.assert_allclose(_t(p[1]), [-0.024999974, 0, 0.024999974], atol=1e-6)
    np.testing.assert_allclose(_t(p[10]), [-0.24999975, 0, 0.24999975], atol=1e-6)


def test_case6_yaw_while_moving():
    p = action_string_to_c2w("dw-20", **GAME)
    np.testing.assert_allclose(_t(p[1]), [0.00026179434, 0, 0.024998603], atol=1e-6)
    np.testing.assert_allclose([p[1, 0, 2], p[1, 0, 0]], [0.0104717845, 0.99994516], atol=1e-6)
    np.testing.assert_allclose(_t(p[20]), [0.054767124, 0, 0.4960744], atol=1e-6)
    np.testing.assert_allclose(p[20, :3, :3], _ry(12), atol=1e-6)
    k = np.arange(1, 21) * math.radians(0.6)
    expect = 0.025 / (1 + 1e-6) * np.array([np.sin(k).sum(), 0, np.cos(k).sum()])
    np.testing.assert_allclose(_t(p[20]), expect, atol=1e-9)


def test_case7_pitch_clamp_60():
    p = action_string_to_c2w("i-120", **GAME)
    np.testing.assert_allclose(p[50, :3, :3], _rx(30), atol=1e-6)
    np.testing.assert_allclose(p[100, :3, :3], _rx(60), atol=1e-6)
    np.testing.assert_allclose(p[120], p[100], atol=1e-12)
    np.testing.assert_allclose(p[100, :3, 2], [0, -0.8660254, 0.5], atol=1e-6)
    np.testing.assert_allclose(_t(p[120]), 0, atol=1e-12)


def test_case8_classic_pitch_reject_85():
    p = action_string_to_c2w("i-80", 0.055, 1.2, "classic")
    assert p.shape == (81, 4, 4)
    for i in range(70, 81):
        np.testing.assert_allclose(p[i, :3, :3], _rx(84), atol=1e-6)


def test_case9_first_release_demo():
    """Legacy numbers come from NVlabs' first release, which normalises headings by (norm + 1e-6); diffusers
    (our classic oracle) divides by the plain norm, so they agree to a relative 1e-6 only."""
    p = action_string_to_c2w("w-80,jw-40,w-40,lw-60,w-100", 0.055, 1.2, "classic")
    assert p.shape == (321, 4, 4)
    tol = dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(_t(p[80]), [0, 0, 4.399996], **tol)
    np.testing.assert_allclose(_t(p[120]), [-0.88928556, 0, 6.342364], **tol)
    np.testing.assert_allclose(p[120, :3, :3], _ry(-48), atol=1e-6)
    np.testing.assert_allclose(_t(p[160]), [-2.5242026, 0, 7.81445], **tol)
    np.testing.assert_allclose(_t(p[220]), [-3.134404, 0, 10.840712], **tol)
    np.testing.assert_allclose(p[220, :3, :3], _ry(24), atol=1e-6)
    np.testing.assert_allclose(_t(p[320]), [-0.89735466, 0, 15.865207], **tol)
    g = action_string_to_c2w("w-80,jw-40,w-40,lw-60,w-100", 0.055, 1.2, "game")
    np.testing.assert_allclose(_t(g[120]), [-2.1999979, 0, 6.5999932], atol=1e-5)
    np.testing.assert_allclose(_t(g[220]), [0.3172142, 0, 12.099988], atol=1e-5)
    np.testing.assert_allclose(_t(g[320]), [1.1683536, 0, 17.599983], atol=1e-5)
    np.testing.assert_allclose(g[:, :3, :3], np.broadcast_to(np.eye(3), (321, 3, 3)), atol=1e-12)
    assert np.all(np.diff(g[120:161, 0, 3]) < 0)  # strafe coasts after "jw" ends


def test_case10_current_demo0():
    p = action_string_to_c2w("w-100,dw-60,w-100,aw-60", **GAME)
    np.testing.assert_allclose(_t(p[100]), [0, 0, 2.4999976], atol=1e-6)
    np.testing.assert_allclose(_t(p[160]), [0.46328104, 0, 3.90083], atol=1e-6)
    np.testing.assert_allclose(p[160, :3, :3], _ry(36), atol=1e-6)
    np.testing.assert_allclose(_t(p[260]), [2.1944938, 0, 5.7020707], atol=1e-6)
    np.testing.assert_allclose(p[260, :3, :3], _ry(45.285167), atol=1e-6)
    np.testing.assert_allclose(_t(p[320]), [2.8639948, 0, 7.0168824], atol=1e-6)
    np.testing.assert_allclose(p[320, :3, :3], _ry(9.285166), atol=1e-6)


def test_case11_transitions():
    p = action_string_to_c2w("jw-5,w-5", **GAME)
    np.testing.assert_allclose(_t(p[5]), [-0.12499987, 0, 0.12499987], atol=1e-6)
    np.testing.assert_allclose(_t(p[6]), [-0.14848518, 0, 0.14999986], atol=1e-6)
    np.testing.assert_allclose(_t(p[10]), [-0.22903366, 0, 0.24999975], atol=1e-6)
    q = action_string_to_c2w("ik-4,wd-2,s-1", **GAME)
    assert q.shape == (8, 4, 4)
    np.testing.assert_allclose(q[4], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(q[6, :3, :3], _ry(1.2), atol=1e-6)
    np.testing.assert_allclose(_t(q[6]), [0.0007853543, 0, 0.049993098], atol=1e-6)
    np.testing.assert_allclose(q[7, :3, :3], _ry(1.2), atol=1e-6)
    np.testing.assert_allclose(_t(q[7]), [0.00026179434, 0, 0.024998603], atol=1e-6)


def test_case12_parsing_edge_cases_game():
    p = action_string_to_c2w("W-2 , D-2\uff0cnone-1", **GAME)
    assert p.shape == (6, 4, 4)
    np.testing.assert_allclose(p[2, 2, 3], 0.04999995, atol=1e-6)
    np.testing.assert_allclose(p[4, :3, :3], _ry(1.2), atol=1e-6)
    np.testing.assert_allclose(p[5, :3, :3], _ry(1.763648), atol=1e-6)
    np.testing.assert_allclose(p[5, 0, 2], 0.030776601, atol=1e-6)
    assert parse_action_string("dw-1")[0]["keys"] == ["d", "w"]
    assert parse_action_string("wW-1")[0]["keys"] == ["w"]


def test_game_is_rigid_and_level():
    p = action_string_to_c2w("dw-30,ikj-20,lw-10,none-15,s-5", **GAME)
    rot = p[:, :3, :3]
    np.testing.assert_allclose(np.einsum("fji,fjk->fik", rot, rot), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)
    np.testing.assert_allclose(p[:, 1, 3], 0, atol=1e-15)   # height never changes
    np.testing.assert_allclose(p[:, 1, 0], 0, atol=1e-12)   # no roll: the right axis stays horizontal
