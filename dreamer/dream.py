"""Steer a run's world model by hand in a local web page, beside reality.

    python -m dreamer.dream RUN_DIR [--port 8000] [--host 127.0.0.1] [--device auto]

Loads ``RUN_DIR``'s checkpoint and replay (read-only) and serves one page:
choose a start (a replayed episode and a step, or a fresh environment reset),
then give actions (keys, sliders, or let the actor drive) and watch the
decoded dream beside the real environment stepped with the same actions,
with the predicted reward, continue probability and value as live plots.
The page downloads what was played as a video (dream | reality | error) and
as a JSON of actions. Only the downloads asked for leave the server; nothing
is written into the run directory.

The server is Python's own ``http.server`` (threaded), so the page needs no
extra package and no build step; the page is plain HTML and JavaScript.
It binds to 127.0.0.1 by default: anyone who can reach the port can step
the model.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imageio
import numpy as np

from dreamer.cli import USAGE_EXIT_STATUS, USER_ERRORS
from dreamer.dream_session import DreamError, DreamSession, Frame
from dreamer.replay import list_episodes
from dreamer.run import load_trained

PAGE = Path(__file__).with_name("dream_page.html")
MAX_BODY = 64 * 1024  # bytes of a request body
MAX_LISTED_EPISODES = 500  # the newest ones, in the page's start menu


def load_session(run_dir: str | Path, device: str = "auto") -> tuple[DreamSession, dict]:
    """The run's agent, environment and replay as a :class:`DreamSession`, and
    what the page shows about the run."""
    run_dir = Path(run_dir)
    cfg, agent, eval_fn, obs_space, frames = load_trained(run_dir, device)
    episodes = list_episodes(run_dir / "replay") if (run_dir / "replay").is_dir() else {}
    episodes = dict(list(episodes.items())[-MAX_LISTED_EPISODES:])
    encoder = agent.world_model.encoder
    session = DreamSession(agent, eval_fn, episodes, encoder.image_keys, encoder.vector_keys)
    info = {
        "run_dir": str(run_dir),
        "algo": str(cfg.algo.name),
        "env": f"{cfg.env.suite}:{cfg.env.task}",
        "frames": frames,
        "device": str(agent.device),
        "action": {"discrete": bool(agent.discrete), "dim": int(agent.action_dim)},
        "image_keys": list(encoder.image_keys),
        "vector_keys": {k: int(np.prod(obs_space[k].shape)) for k in encoder.vector_keys},
        "driver": "planner" if agent.planner is not None else "actor",
        "has_value": agent.behavior is not None,
        "episodes": [{"id": e.id, "length": e.length} for e in episodes.values()],
    }
    return session, info


def frame_json(frame: Frame, session: DreamSession) -> dict:
    """A step as the page reads it: images as PNG data URLs, numbers as floats."""
    def pack(obs):
        if obs is None:
            return None
        return {k: _png(v) if k in session.image_keys else [float(x) for x in np.ravel(v)] for k, v in obs.items()}

    if session.env is not None:
        reality = "environment" if session.real_latent is not None else "ended"
    else:
        reality = "recording" if session.recording is not None else "none"
    return {
        "t": len(session.frames) - 1,
        "dream": pack(frame.dream),
        "real": pack(frame.real),
        "reward": frame.reward,
        "cont": frame.cont,
        "value": frame.value,
        "real_reward": frame.real_reward,
        "error": frame.error,
        "observed": frame.observed,
        "action": frame.action,
        "reality": reality,
        "latency_ms": session.step_latency_ms,
    }


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    imageio.imwrite(buffer, image, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def video_bytes(session: DreamSession, fps: int = 10) -> bytes:
    frames = session.video()
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # H.264 needs even sides
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dream.mp4"
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
        return path.read_bytes()


class DreamServer(ThreadingHTTPServer):
    """Serves the page and its JSON API for one session.

    Requests arrive on threads of their own, but every session call runs on
    one worker thread, in turn: MuJoCo's OpenGL context belongs to the thread
    that made it, so the environment must be stepped where it was built.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], session: DreamSession, info: dict):
        super().__init__(address, DreamHandler)
        self.session, self.info = session, info
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dream-session")

    def handle_api(self, method: str, path: str, body: dict | None):
        """(status, content type, payload) for one API request."""
        return self.worker.submit(self._handle_api, method, path, body).result()

    def close_session(self) -> None:
        """Close the session's environment on its own thread, then the worker."""
        self.worker.submit(self.session.close).result()
        self.worker.shutdown()

    def _handle_api(self, method: str, path: str, body: dict | None):
        session = self.session
        if method == "GET" and path == "/api/info":
            return self._json({**self.info, "started": session.start_info})
        if method == "POST" and path == "/api/start":
            kind = _field(body, "kind", str)
            if kind == "replay":
                session.start_replay(_field(body, "episode", str), _field(body, "step", int),
                                     body.get("context", 5))
            elif kind == "reset":
                session.start_reset(_field(body, "seed", int), body.get("context", 1))
            else:
                raise DreamError(f"kind={kind!r} must be 'replay' or 'reset'")
            return self._json({"start": session.start_info,
                               "frames": [frame_json(f, session) for f in session.frames]})
        if method == "POST" and path == "/api/step":
            driver = body.get("driver", "person") if isinstance(body, dict) else None
            if driver == "person":
                action = session.action_from(body.get("action"))
            elif driver == "policy":
                action = session.policy_action()
            elif driver == "recording":
                action = session.recorded_action()
            else:
                raise DreamError(f"driver={driver!r} must be 'person', 'policy' or 'recording'")
            return self._json(frame_json(session.step(action), session))
        if method == "POST" and path == "/api/resync":
            return self._json(frame_json(session.resync(), session))
        if method == "GET" and path == "/api/video.mp4":
            return HTTPStatus.OK, "video/mp4", video_bytes(session)
        if method == "GET" and path == "/api/actions.json":
            return self._json(session.record())
        return HTTPStatus.NOT_FOUND, "application/json", _error_body(f"no endpoint {method} {path}")

    @staticmethod
    def _json(payload) -> tuple:
        return HTTPStatus.OK, "application/json", json.dumps(payload).encode()


def _field(body, name: str, kind: type):
    if not isinstance(body, dict):
        raise DreamError("the request body must be a JSON object")
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DreamError(f"{name}={value!r} must be {'a string' if kind is str else 'an integer'}")
    return value


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class DreamHandler(BaseHTTPRequestHandler):
    server: DreamServer

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.read_bytes())
        else:
            self._api("GET", path, None)

    def do_POST(self):  # noqa: N802
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._send(HTTPStatus.LENGTH_REQUIRED, "application/json", _error_body("Content-Length is required"))
        if int(length) > MAX_BODY:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "application/json",
                              _error_body(f"the body has {length} bytes; at most {MAX_BODY} are accepted"))
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw.decode() or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return self._send(HTTPStatus.BAD_REQUEST, "application/json", _error_body(f"the body is not JSON: {error}"))
        self._api("POST", self.path.split("?", 1)[0], body)

    def _api(self, method: str, path: str, body):
        try:
            status, kind, payload = self.server.handle_api(method, path, body)
        except (DreamError, ValueError) as error:
            status, kind, payload = HTTPStatus.BAD_REQUEST, "application/json", _error_body(str(error))
        self._send(status, kind, payload)

    def _send(self, status, kind: str, payload: bytes):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        if kind == "video/mp4":
            self.send_header("Content-Disposition", 'attachment; filename="dream.mp4"')
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # one line per request would bury the start-up message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dreamer.dream", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory with .hydra/config.yaml, checkpoint.pt and replay/")
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in [0, 65535], got {args.port}")
    try:
        session, info = load_session(args.run_dir, args.device)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_EXIT_STATUS
    try:
        server = DreamServer((args.host, args.port), session, info)
    except OSError as error:
        print(f"error: cannot serve on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return USAGE_EXIT_STATUS
    host, port = server.server_address[:2]
    scope = "this machine only" if host.startswith("127.") else "reachable from the network"
    print(f"[dream] {info['algo']} on {info['env']} at {info['frames']} frames, {len(info['episodes'])} replayed episodes")
    print(f"[dream] serving on {host}:{port} ({scope}): open http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.close_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
