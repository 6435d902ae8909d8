"""The steer-the-dream page: its session logic, its endpoints (bad input
included) and, in a real headless browser, the page itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, train_in_process
from dreamer.dream import DreamServer, load_session, main
from dreamer.dream_session import DreamError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dream_run")
    train_in_process(path, ["experiment=debug", "steps=200", "eval_every=0", "report_every=0"])
    return path


def tree(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def server(run_dir):
    before = tree(run_dir)
    session, info = load_session(run_dir, "cpu")
    server = DreamServer(("127.0.0.1", 0), session, info)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    server.close_session()
    # Nothing the page does writes into the run directory.
    assert tree(run_dir) == before


def call(server, method: str, path: str, body=None, raw: bytes | None = None):
    host, port = server.server_address[:2]
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
            kind = response.headers["Content-Type"]
            return response.status, json.loads(payload) if kind == "application/json" else payload
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ------------------------------------------------------------------ session
def test_the_dream_follows_reality_from_a_fresh_reset_and_resyncs(run_dir):
    session, info = load_session(run_dir, "cpu")
    try:
        frame = session.start_reset(seed=3, context=2)
        assert len(session.frames) == 2 and frame.observed and frame.real is not None
        image = frame.dream["image"]
        assert image.dtype == np.uint8 and image.shape == (*info_size(info, session), 3)
        for _ in range(4):
            frame = session.step(np.array([1.0, -1.0], np.float32))
        assert not frame.observed and frame.error is not None and frame.real_reward is not None
        # The same seed and actions give the same reality.
        again, _ = load_session(run_dir, "cpu")
        again.start_reset(seed=3, context=2)
        for _ in range(4):
            other = again.step(np.array([1.0, -1.0], np.float32))
        np.testing.assert_array_equal(other.real["image"], frame.real["image"])
        again.close()
        synced = session.resync()
        assert synced.observed and session.latent["deter"].data_ptr() != session.real_latent["deter"].data_ptr()
        record = session.record()
        assert record["start"] == {"kind": "reset", "seed": 3, "context": 2} and len(record["actions"]) == 4
        video = session.video()
        assert video.shape == (6, image.shape[0], 3 * image.shape[1], 3)
    finally:
        session.close()


def info_size(info, session) -> tuple[int, int]:
    episode = next(iter(session.episodes.values()))
    return tuple(episode.load()["image"].shape[1:3])


def test_a_replayed_start_shows_the_recording_while_the_actions_match_it(run_dir):
    session, _ = load_session(run_dir, "cpu")
    episode_id, episode = next(iter(session.episodes.items()))
    data = episode.load()
    session.start_replay(episode_id, step=6, context=3)
    assert [f.observed for f in session.frames] == [True] * 3
    frame = session.step(session.recorded_action())
    np.testing.assert_array_equal(frame.real["image"], data["image"][7])
    frame = session.step(np.clip(data["action"][8] + 0.5, -1, 1))  # not the recorded action
    assert frame.real is None and session.recording is None
    with pytest.raises(DreamError, match="nothing to sync to"):
        session.resync()
    with pytest.raises(DreamError, match="recorded action"):
        session.recorded_action()


def test_the_actor_can_drive_and_bad_actions_and_starts_are_refused(run_dir):
    session, _ = load_session(run_dir, "cpu")
    with pytest.raises(DreamError, match="choose a start"):
        session.step(np.zeros(2, np.float32))
    session.start_reset(seed=0)
    action = session.policy_action()
    assert action.shape == (2,) and np.abs(action).max() <= 1
    session.step(action)
    for bad in ([0.1], [0.1, "a"], "left", [float("nan"), 0.0], None):
        with pytest.raises(DreamError, match="action="):
            session.action_from(bad)
    np.testing.assert_array_equal(session.action_from([3, -2]), [1.0, -1.0])
    with pytest.raises(DreamError, match="unknown episode"):
        session.start_replay("nope", 0)
    with pytest.raises(DreamError, match="step=999"):
        session.start_replay(next(iter(session.episodes)), 999)
    with pytest.raises(DreamError, match="context=0"):
        session.start_reset(seed=0, context=0)
    with pytest.raises(DreamError, match="seed=-1"):
        session.start_reset(seed=-1)
    session.close()


VARIANTS = {
    # vector observations and one-hot actions
    "gym_cartpole": ["experiment=none", "env=gym", "env.task=CartPole-v1", "model=tiny", "algo.batch_size=4",
                     "algo.batch_length=16", "algo.train_ratio=64", "prefill=100", "steps=200", "progress=false",
                     "fast.compile_behavior=false"],
    # the planner drives
    "planet": ["experiment=debug", "algo=planet", "algo.planner.candidates=64", "algo.planner.top_k=8",
               "algo.planner.iterations=2", "steps=200"],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_vector_observations_one_hot_actions_and_the_planner_drive_too(tmp_path, variant):
    train_in_process(tmp_path, [*VARIANTS[variant], "eval_every=0", "report_every=0"])
    session, info = load_session(tmp_path, "cpu")
    try:
        session.start_reset(seed=0, context=2)
        frame = session.step(session.policy_action())
        if variant == "gym_cartpole":
            assert info["action"] == {"discrete": True, "dim": 2} and info["vector_keys"] == {"vector": 4}
            assert frame.dream["vector"].shape == (4,) and frame.real["vector"].shape == (4,)
            frame = session.step(session.action_from(1))
            assert frame.action == [0.0, 1.0] and frame.error is not None
            with pytest.raises(DreamError, match="action index in \\[0, 1\\]"):
                session.action_from(2)
        else:
            assert info["driver"] == "planner" and not info["has_value"] and frame.value is None
            assert frame.dream["image"].dtype == np.uint8 and len(frame.action) == 2
    finally:
        session.close()


# ---------------------------------------------------------------- endpoints
def test_the_endpoints_play_a_dream_and_export_it(server):
    status, info = call(server, "GET", "/api/info")
    assert status == 200 and info["action"] == {"discrete": False, "dim": 2} and info["episodes"]
    status, page = call(server, "GET", "/")
    assert status == 200 and b"Steer the dream" in page
    status, started = call(server, "POST", "/api/start", {"kind": "reset", "seed": 1, "context": 2})
    assert status == 200 and len(started["frames"]) == 2
    assert started["frames"][-1]["dream"]["image"].startswith("data:image/png;base64,")
    status, frame = call(server, "POST", "/api/step", {"driver": "person", "action": [0.5, 0.5]})
    assert status == 200 and frame["t"] == 2 and frame["reality"] == "environment" and frame["latency_ms"] > 0
    status, frame = call(server, "POST", "/api/step", {"driver": "policy"})
    assert status == 200 and frame["t"] == 3 and len(frame["action"]) == 2
    status, frame = call(server, "POST", "/api/resync", {})
    assert status == 200 and frame["observed"]
    status, video = call(server, "GET", "/api/video.mp4")
    assert status == 200 and video[4:8] == b"ftyp"
    status, record = call(server, "GET", "/api/actions.json")
    assert status == 200 and record["actions"][0] == [0.5, 0.5] and len(record["actions"]) == 2


@pytest.mark.parametrize("method, path, body, message", [
    ("POST", "/api/start", {"kind": "teleport"}, "kind='teleport' must be 'replay' or 'reset'"),
    ("POST", "/api/start", {"kind": "reset", "seed": "x"}, "seed='x' must be an integer"),
    ("POST", "/api/start", {"kind": "replay", "episode": "nope", "step": 0}, "unknown episode 'nope'"),
    ("POST", "/api/start", [1, 2], "must be a JSON object"),
    ("POST", "/api/step", {"driver": "ghost"}, "driver='ghost'"),
    ("POST", "/api/step", {"action": [1, 2, 3]}, "must be a list of 2 numbers"),
    ("GET", "/api/nothing", None, "no endpoint GET /api/nothing"),
])
def test_bad_requests_get_one_clear_error(server, method, path, body, message):
    status, payload = call(server, method, path, body if body is not None else None)
    assert status in (400, 404) and message in payload["error"]


def test_malformed_and_oversized_bodies_are_refused(server):
    status, payload = call(server, "POST", "/api/step", raw=b"{not json")
    assert status == 400 and "not JSON" in payload["error"]
    status, payload = call(server, "POST", "/api/step", raw=b"x" * 70_000)
    assert status == 413 and "at most" in payload["error"]


def test_the_command_names_a_missing_run_directory(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


# ------------------------------------------------------------------ browser
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (bash scripts/setup.sh --test)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(Path.cwd())})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_in_a_real_browser(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    host, port = server.server_address[:2]
    wait = WebDriverWait(browser, 60)
    try:
        browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
        browser.get(f"http://{host}:{port}/")
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
        points = lambda plot: int(browser.find_element(By.ID, plot).get_attribute("data-points") or 0)  # noqa: E731
        # Start from a replayed episode: its observed frames are shown.
        browser.find_element(By.ID, "step").clear()
        browser.find_element(By.ID, "step").send_keys("5")
        browser.find_element(By.ID, "start-replay").click()
        wait.until(lambda b: text("t") == "4")
        assert "replay" in text("status") and points("plot-reward") == 5
        first = browser.find_element(By.ID, "dream").get_attribute("src")
        # Keys step the dream: the frame changes and the plots grow.
        body = browser.find_element(By.TAG_NAME, "body")
        for count, key in enumerate([Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_UP], start=5):
            body.send_keys(key)
            wait.until(lambda b, n=count: text("t") == str(n))
        assert browser.find_element(By.ID, "dream").get_attribute("src") != first
        assert points("plot-value") == 8 and points("plot-cont") == 8
        assert text("reality") == "none"  # the keys left the recording
        # A fresh reset has reality beside the dream; re-sync, then download.
        browser.find_element(By.ID, "start-reset").click()
        wait.until(lambda b: text("reality") == "environment")
        body.send_keys(Keys.ARROW_LEFT)
        wait.until(lambda b: text("t") == "5")
        assert text("error-value") not in ("–", "no reality")
        browser.find_element(By.ID, "resync").click()
        wait.until(lambda b: text("status") == "re-synced to reality")
        browser.find_element(By.ID, "policy-drives").click()
        wait.until(lambda b: int(text("t")) >= 8)
        browser.find_element(By.ID, "policy-drives").click()
        browser.find_element(By.ID, "download-actions").click()
        browser.find_element(By.ID, "download-video").click()
        wait.until(lambda b: (tmp_path / "dream_actions.json").exists() and (tmp_path / "dream.mp4").exists()
                   and not list(tmp_path.glob("*.crdownload")))
        record = json.loads((tmp_path / "dream_actions.json").read_text())
        assert record["start"]["kind"] == "reset" and record["actions"][0] == [-1.0, 0.0]
        assert (tmp_path / "dream.mp4").read_bytes()[4:8] == b"ftyp"
        assert float(text("latency")) > 0
    finally:
        browser.quit()


def test_the_command_serves_on_localhost_and_says_where(run_dir):
    process = subprocess.Popen([sys.executable, "-m", "dreamer.dream", str(run_dir), "--port", "0"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not lines or "serving on" not in lines[-1]:
            lines.append(process.stdout.readline())
            assert lines[-1], f"the server stopped: {lines}"
        assert any("replayed episodes" in line for line in lines)
        assert "serving on 127.0.0.1:" in lines[-1] and "this machine only" in lines[-1]
        url = lines[-1].split("open ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/info", timeout=60) as response:
            assert json.loads(response.read())["algo"] == "dreamerv3"
    finally:
        process.terminate()
        process.wait(timeout=60)
