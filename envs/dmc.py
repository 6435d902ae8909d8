"""DeepMind Control Suite adapter: any ``domain_task`` from pixels and/or proprioception."""

from __future__ import annotations

import os

import numpy as np

from envs.base import RESERVED_KEYS, Env, Obs, Space, check_action, continuous_space, image_space, make_obs, vector_space

# Quadruped's camera 0 looks at the floor from far away; camera 2 follows the body.
_DEFAULT_CAMERA = {"quadruped": 2}


def _load_suite():
    """Import dm_control.suite, choosing a headless renderer first.

    MuJoCo reads MUJOCO_GL once, when dm_control is first imported, so it is set
    here (unless the user chose one, e.g. "osmesa") and never at module import.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dm_control import suite

    return suite


def task_names() -> list[str]:
    """All ``domain_task`` names of the DeepMind Control Suite."""
    return sorted(_task_table())


def _task_table() -> dict[str, tuple[str, str]]:
    suite = _load_suite()
    return {f"{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS}


class DMC(Env):
    """One DeepMind Control task; one ``step`` is one control step (a frame).

    Observations: ``image`` uint8 (H, W, 3) rendered from ``camera`` if
    ``image``; if ``proprio``, every entry of the task's observation as a
    float32 vector key of its own (``position``, ``velocity``, ...).
    Actions: float32 (A,) in [-1, 1], rescaled to the actuator bounds.

    The suite's own time limit is switched off; the TimeLimit wrapper ends
    episodes, so every episode ends by time limit (``is_terminal`` False)
    unless the task itself reports a terminal state (discount 0).

    ``shadow_size`` is the side of MuJoCo's off-screen shadow map. Rendering
    dominates the cost of a step and the 2048 default of the models is far
    more than a 64x64 image can show.
    """

    def __init__(
        self,
        task: str,
        size: tuple[int, int] = (64, 64),
        camera: int | None = None,
        seed: int = 0,
        image: bool = True,
        proprio: bool = False,
        shadow_size: int = 512,
    ):
        table = _task_table()
        if task not in table:
            raise ValueError(f"Unknown DMC task {task!r}; valid tasks: {', '.join(sorted(table))}")
        if not image and not proprio:
            raise ValueError("DMC needs image=True or proprio=True (or both); both are False")
        domain, task_name = table[task]
        suite = _load_suite()
        self._env = suite.load(
            domain,
            task_name,
            task_kwargs={"random": seed, "time_limit": float("inf")},
        )
        self.size = (int(size[0]), int(size[1]))
        self.camera = _DEFAULT_CAMERA.get(domain, 0) if camera is None else int(camera)
        self.image = image
        self.proprio = proprio
        physics = self._env.physics
        # Both must be set before the first render creates the GL context.
        physics.model.vis.quality.shadowsize = int(shadow_size)
        physics.model.vis.global_.offheight = max(physics.model.vis.global_.offheight, self.size[0])
        physics.model.vis.global_.offwidth = max(physics.model.vis.global_.offwidth, self.size[1])

        spec = self._env.action_spec()
        self._act_low = spec.minimum.astype(np.float32)
        self._act_high = spec.maximum.astype(np.float32)
        self.act_space = continuous_space(int(np.prod(spec.shape)))
        self.obs_space: dict[str, Space] = {}
        if image:
            self.obs_space["image"] = image_space(*self.size)
        if proprio:
            for key, value in self._env.observation_spec().items():
                if key == "image" or key in RESERVED_KEYS:
                    raise ValueError(f"DMC observation key {key!r} collides with a reserved key")
                self.obs_space[key] = vector_space(int(np.prod(value.shape, dtype=int)))

    def reset(self) -> Obs:
        timestep = self._env.reset()
        return make_obs(self._values(timestep, observe=True), is_first=True)

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        checked = check_action(action, self.act_space)
        native = self._act_low + (checked + 1) / 2 * (self._act_high - self._act_low)
        timestep = self._env.step(native.reshape(self._env.action_spec().shape))
        last = timestep.last()
        terminal = last and timestep.discount == 0
        return make_obs(
            self._values(timestep, observe or last),
            reward=timestep.reward or 0.0,
            is_last=last,
            is_terminal=terminal,
        )

    def render(self) -> np.ndarray:
        """The current frame, uint8 (H, W, 3)."""
        # MuJoCo's frame comes back as a flipped view; torch cannot wrap negative strides.
        return np.ascontiguousarray(self._env.physics.render(*self.size, camera_id=self.camera))

    def close(self) -> None:
        self._env.close()

    def _values(self, timestep, observe: bool) -> dict[str, np.ndarray]:
        values = {}
        if self.image and observe:
            values["image"] = self.render()
        if self.proprio:
            for key, value in timestep.observation.items():
                values[key] = np.asarray(value, np.float32).reshape(-1)
        return values
