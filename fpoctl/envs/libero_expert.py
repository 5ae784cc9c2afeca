"""Scripted LIBERO-spatial expert: grasp the black bowl by its rim, carry it, set it on the plate.

It reads the simulator (privileged object poses), never the observation, so it works in both
observation modes. Actions are LIBERO's: 3 position deltas (x 0.05 m), 3 rotation deltas
(x 0.5 rad, world frame), gripper (-1 open, +1 close).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.base import Expert

POS_SCALE, ROT_SCALE = 0.05, 0.5  # OSC_POSE output limits for an input of 1
RIM_RADIUS = 0.047  # centre of the bowl's outer wall, from its collision boxes
GRASP_HEIGHT = 0.035  # grip site above the bowl's origin when closing on the wall
APPROACH_HEIGHT = 0.10  # above the grasp point before descending
CARRY_CLEARANCE = 0.18  # bowl origin above the plate while carrying
PLACE_HEIGHT = 0.02  # bowl origin above the plate's when releasing


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame axis-angle taking rotation matrix `current` to `target`."""
    r = target @ current.T
    angle = np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


class BowlOnPlateExpert(Expert):
    """A phase machine: above, descend, close, lift, carry, lower, release, retreat."""

    def __init__(self, gain: float = 1.5, noise: float = 0.0, seed: int | None = None) -> None:
        self.gain, self.noise = gain, noise
        self.rng = np.random.default_rng(seed)
        self.phase, self.t_phase = "above", 0
        self.side = np.zeros(3)
        self.home_rot = np.eye(3)

    # --- privileged reads ---------------------------------------------------------------------
    @staticmethod
    def _robosuite(env: gym.Env) -> Any:
        return env.unwrapped.sim_env.env

    def _pos(self, env: gym.Env, obj: str) -> np.ndarray:
        rs = self._robosuite(env)
        return np.array(rs.sim.data.body_xpos[rs.obj_body_id[obj]])

    def _eef(self, env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
        rs = self._robosuite(env)
        site = rs.robots[0].eef_site_id
        return np.array(rs.sim.data.site_xpos[site]), np.array(rs.sim.data.site_xmat[site]).reshape(3, 3)

    def reset(self, env: gym.Env) -> None:
        rs = self._robosuite(env)
        self.bowl, self.plate = rs.obj_of_interest[0], rs.obj_of_interest[1]
        _, self.home_rot = self._eef(env)
        self.phase, self.t_phase = "above", 0
        # Grasp the wall on the side (+y or -y: the fingers close along y) farther from clutter.
        bowl = self._pos(env, self.bowl)
        others = [self._pos(env, o) for o in rs.objects_dict if o not in (self.bowl, self.plate)]
        best = -1.0
        for sign in (1.0, -1.0):
            side = np.array([0.0, sign * RIM_RADIUS, 0.0])
            clearance = min((np.linalg.norm((bowl + side - o)[:2]) for o in others), default=1.0)
            if clearance > best:
                best, self.side = clearance, side

    # --- control ------------------------------------------------------------------------------
    def _move(self, env: gym.Env, target: np.ndarray, gripper: float) -> tuple[np.ndarray, float]:
        pos, rot = self._eef(env)
        err = target - pos
        action = np.zeros(7)
        action[:3] = np.clip(self.gain * err / POS_SCALE, -1.0, 1.0)
        action[3:6] = np.clip(_rotation_error(self.home_rot, rot) / ROT_SCALE, -1.0, 1.0)
        action[6] = gripper
        if self.noise:
            action[:6] += self.noise * self.rng.standard_normal(6)
        return np.clip(action, -1.0, 1.0), float(np.linalg.norm(err))

    def _next(self, phase: str) -> None:
        self.phase, self.t_phase = phase, 0

    def act(self, env: gym.Env, obs: dict) -> np.ndarray:
        bowl, plate = self._pos(env, self.bowl), self._pos(env, self.plate)
        grasp = bowl + self.side + np.array([0.0, 0.0, GRASP_HEIGHT])
        carry_z = plate[2] + CARRY_CLEARANCE + GRASP_HEIGHT
        self.t_phase += 1
        p = self.phase
        if p == "above":
            action, err = self._move(env, grasp + [0, 0, APPROACH_HEIGHT], -1.0)
            if err < 0.01 or self.t_phase > 60:
                self._next("descend")
        elif p == "descend":
            action, err = self._move(env, grasp, -1.0)
            if err < 0.006 or self.t_phase > 40:
                self._next("close")
        elif p == "close":
            action, _ = self._move(env, grasp, 1.0)
            if self.t_phase >= 12:
                self._next("lift")
        elif p == "lift":
            pos, _ = self._eef(env)
            action, err = self._move(env, np.array([pos[0], pos[1], carry_z]), 1.0)
            if err < 0.02 or self.t_phase > 40:
                self._next("carry")
        elif p == "carry":
            target = plate + self.side + [0, 0, CARRY_CLEARANCE + GRASP_HEIGHT]
            action, err = self._move(env, target, 1.0)
            if err < 0.01 or self.t_phase > 60:
                self._next("lower")
        elif p == "lower":
            target = plate + self.side + [0, 0, PLACE_HEIGHT + GRASP_HEIGHT]
            action, err = self._move(env, target, 1.0)
            if err < 0.008 or self.t_phase > 40:
                self._next("release")
        elif p == "release":
            pos, _ = self._eef(env)
            action, _ = self._move(env, pos, -1.0)
            if self.t_phase >= 10:
                self._next("retreat")
        else:
            pos, _ = self._eef(env)
            action, _ = self._move(env, pos + [0, 0, 0.05], -1.0)
        return action.astype(np.float32)
