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
INTEGRAL_GAIN = 0.1
RIM_RADIUS = 0.050  # the bowl wall at the pads' height (it slants: r ~ 0.047 + 0.58 (z - 0.034))
GRASP_HEIGHT = 0.035  # grip site above the bowl's origin when closing on the wall
# Finger pre-shapes before the grasp: the gripper's stored command (+1 open .. -1 closed) and the
# pads' resulting half-opening. "wide" is robust to position error; "narrow" (pads ~1.3 cm either
# side of the wall) fits between the bowl and a drawer's walls.
PRESHAPES = {"wide": (1.0, 0.042), "narrow": (-0.5, 0.017)}
FINGER_DEPTH = 0.023  # a finger reaches this far outward beyond its pad
COLLISION_GROUP = np.array([1, 0, 0, 0, 0, 0], np.uint8)  # robosuite's collision geoms (group 0)


def _gripper_probes(half_open: float) -> list[tuple[float, float, float]]:
    """(along the finger axis from the wall, across, lowest point above the grip site) of the
    places the fingers and the hand will occupy at the grasp."""
    # Rays ~3-4 mm apart (a drawer wall is ~5 mm thick and must not slip between two of them),
    # from 3 mm inside the pad's face to 3 mm beyond the finger's sides: the arm is that precise.
    fingers = [(sign * (half_open + d), w, -0.02) for sign in (-1, 1)
               for d in np.linspace(-0.007, FINGER_DEPTH, 10) for w in np.linspace(-0.017, 0.017, 9)]
    hand = [(a, w, 0.02) for a in np.linspace(-0.11, 0.11, 9) for w in (-0.035, 0.0, 0.035)]
    return fingers + hand


APPROACH_HEIGHT = 0.10  # above the grasp point before descending
HOVER_HEIGHT = 0.03  # pads just clear of the rim: the xy offset is settled here
DESCEND_SPEED = 0.004  # m per step for the last few centimetres: a slow arm lags little
CARRY_CLEARANCE = 0.18  # bowl origin above the plate while carrying
CLOSE_STEPS = 18  # the fingers reach the wall after ~10 steps; then the grip firms up
TRAVEL_Z = 1.22  # grip-site height for moving across the table (the cabinet top is ~1.12)
LIFT_HEIGHT = 0.12  # at least this far above where the bowl was picked
PLACE_HEIGHT = 0.02  # bowl origin above the plate's when releasing
MAX_REGRASPS = 2  # a grasp that did not lift the bowl is retried from "above" this many times


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame axis-angle taking rotation matrix `current` to `target`."""
    r = target @ current.T
    angle = np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


class BowlOnPlateExpert(Expert):
    """A phase machine: above, hover, descend, close, [slide], lift, carry, lower, release,
    retreat; a lift that leaves the bowl behind goes back to "above" with a fresh plan."""

    def __init__(self, gain: float = 1.5, noise: float = 0.0, seed: int | None = None) -> None:
        self.gain, self.noise = gain, noise
        self.rng = np.random.default_rng(seed)
        self.phase, self.t_phase = "above", 0
        self.integral = np.zeros(3)
        self.last_err = np.inf
        self.carry_z = 0.0
        self.side = np.zeros(3)
        self.target_rot, self.home = np.eye(3), np.eye(3)
        self.preshape = "wide"
        self.grasp_point = np.zeros(3)
        self.escape, self.slide_to = np.zeros(3), np.zeros(3)
        self.picked_z, self.regrasps = 0.0, 0

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
        _, self.home = self._eef(env)
        self._next("above")
        self.regrasps = 0
        self._plan(env)

    def _plan(self, env: gym.Env, ceiling: float = np.inf) -> None:
        """Choose the grasp and the slide before the lift. The rays that look for obstacles stay
        below `ceiling` (under the gripper, when it hovers over the bowl) so as not to see it."""
        self.side, self.target_rot = self._choose_grasp(env, ceiling)
        self.escape = self._escape(env, ceiling)

    def _choose_grasp(self, env: gym.Env, ceiling: float) -> tuple[np.ndarray, np.ndarray]:
        """The point of the wall to grasp, and the gripper orientation that grasps it.

        Candidates are 16 directions from the bowl's centre times two finger pre-shapes; the
        fingers close along the gripper's y axis, so a direction other than +-y needs a yaw. Each
        is scored by vertical rays (the bowl excluded) where the fingers and the hand will be at
        the grasp: how far the highest thing they would hit (a drawer wall, the ramekin) reaches
        into them decides; ties go to the wide pre-shape, the smaller yaw, then to the side
        farther from other objects.
        """
        import mujoco

        rs = self._robosuite(env)
        model, data = rs.sim.model._model, rs.sim.data._data
        bowl_id = rs.obj_body_id[self.bowl]
        bowl = self._pos(env, self.bowl)
        grasp_z = bowl[2] + GRASP_HEIGHT
        others = [self._pos(env, o)[:2] for o in rs.objects_dict if o not in (self.bowl, self.plate)]
        geom, down = np.zeros(1, np.int32), np.array([0.0, 0.0, -1.0])
        best: tuple | None = None
        for shape_rank, (shape, (_, half_open)) in enumerate(PRESHAPES.items()):
            probes = _gripper_probes(half_open)
            for k in range(16):
                theta = np.pi * k / 8
                side = np.array([np.cos(theta), np.sin(theta), 0.0])
                across = np.array([-side[1], side[0], 0.0])
                yaw = theta % np.pi - np.pi / 2  # in [-90, 90) degrees: the finger axis along `side`
                blocked = 0.0
                for along, width, floor in probes:
                    start = bowl + side * (RIM_RADIUS + along) + across * width
                    start[2] = min(grasp_z + 0.3, ceiling)
                    dist = mujoco.mj_ray(model, data, start, down, None, 1, bowl_id, geom)
                    if dist >= 0:
                        blocked = max(blocked, start[2] - dist - (grasp_z + floor))
                point = bowl[:2] + side[:2] * RIM_RADIUS
                clutter = min((float(np.linalg.norm(point - o)) for o in others), default=1.0)
                # The narrow pre-shape leaves ~1 cm for position error, which grows with reach:
                # prefer its grasp points nearer the robot (smaller x).
                reach = round(point[0] / 0.02) if shape == "narrow" else 0
                score = (round(blocked / 0.005), shape_rank, reach, round(abs(yaw), 3), -clutter)
                if best is None or score < best[0]:
                    best = (score, side * RIM_RADIUS, yaw, shape)
        _, side, yaw, self.preshape = best
        c, s = np.cos(yaw), np.sin(yaw)
        return side, np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ self.home

    def _escape(self, env: gym.Env, ceiling: float) -> np.ndarray:
        """The shortest horizontal slide (up to 6 cm) after which nothing is above the bowl's
        footprint and nothing inside it stands as high as its rim (a drawer's wall); zero when
        the bowl can be lifted straight up or no slide clears it."""
        import mujoco

        rs = self._robosuite(env)
        model, data = rs.sim.model._model, rs.sim.data._data
        bowl_id = rs.obj_body_id[self.bowl]
        bowl = self._pos(env, self.bowl)
        geom, up = np.zeros(1, np.int32), np.array([0.0, 0.0, 1.0])
        rim_z = bowl[2] + 0.055  # the rays start just above the rim
        headroom = min(0.15, ceiling - rim_z)
        ring = [np.zeros(3)] + [np.array([r * np.cos(a), r * np.sin(a), 0.0])
                                for r in (0.03, 0.062) for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)]

        def hit(shift: np.ndarray, direction: np.ndarray, reach: float) -> bool:
            """Does a ray from just above the rim, over the shifted footprint, hit within reach?"""
            for offset in ring:
                start = bowl + shift + offset
                start[2] = rim_z
                dist = mujoco.mj_ray(model, data, start, direction, COLLISION_GROUP, 1, bowl_id, geom)
                if 0 <= dist < reach:
                    return True
            return False

        if hit(np.zeros(3), up, headroom):
            for dist in np.arange(0.01, 0.061, 0.01):
                for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):
                    shift = dist * np.array([np.cos(a), np.sin(a), 0.0])
                    if not hit(shift, up, headroom) and not hit(shift, -up, 0.01):  # -up: a wall's top
                        return shift
        return np.zeros(3)

    # --- control ------------------------------------------------------------------------------
    def _move(self, env: gym.Env, target: np.ndarray, gripper: float) -> tuple[np.ndarray, float]:
        pos, rot = self._eef(env)
        err = target - pos
        action = np.zeros(7)
        # PI control: far from its base the arm settles ~7 mm short of an OSC goal; the integral
        # term (bounded; reset each phase, except from hover to descend) removes that offset.
        if np.linalg.norm(err) < 0.02:  # integrate only near the goal: no wind-up, no overshoot
            self.integral = np.clip(self.integral + INTEGRAL_GAIN * err / POS_SCALE, -0.5, 0.5)
        action[:3] = np.clip(self.gain * err / POS_SCALE + self.integral, -1.0, 1.0)
        action[3:6] = np.clip(_rotation_error(self.target_rot, rot) / ROT_SCALE, -1.0, 1.0)
        action[6] = gripper
        if self.noise:
            action[:6] += self.noise * self.rng.standard_normal(6)
        return np.clip(action, -1.0, 1.0), float(np.linalg.norm(err))

    def _preshape(self, env: gym.Env) -> float:
        """Gripper command that drives the fingers to the chosen pre-shape (0 holds them)."""
        stored = float(self._robosuite(env).robots[0].gripper.current_action[0])
        target = PRESHAPES[self.preshape][0]
        return 0.0 if abs(stored - target) < 0.15 else (-1.0 if stored < target else 1.0)

    def _arrived(self, err: float, tolerance: float) -> bool:
        """Within tolerance, or nearly (2.5x) and no longer closing in: at full reach the arm
        stalls a few millimetres off (joint limits), and the rim grasp tolerates a centimetre."""
        stalled = self.t_phase > 8 and abs(err - self.last_err) < 0.0005
        self.last_err = err
        return err < tolerance or (stalled and err < 2.5 * tolerance)

    def _next(self, phase: str, keep_integral: bool = False) -> None:
        self.phase, self.t_phase = phase, 0
        if not keep_integral:
            self.integral = np.zeros(3)
        self.last_err = np.inf

    def act(self, env: gym.Env, obs: dict) -> np.ndarray:
        bowl, plate = self._pos(env, self.bowl), self._pos(env, self.plate)
        grasp = bowl + self.side + np.array([0.0, 0.0, GRASP_HEIGHT])
        pos, _ = self._eef(env)
        self.t_phase += 1
        p = self.phase
        if p == "above":
            target = grasp + np.array([0.0, 0.0, APPROACH_HEIGHT])
            if np.linalg.norm((target - pos)[:2]) > 0.03:  # travel high: over the cabinet, not into it
                target[2] = max(target[2], TRAVEL_Z)
            action, err = self._move(env, target, self._preshape(env))
            if self._arrived(err, 0.01) or self.t_phase > 80:
                self._next("hover")
        elif p == "hover":  # the pads clear the rim by a few millimetres only: settle xy first
            gripper = self._preshape(env)  # and the fingers (they may be opening after a miss)
            action, err = self._move(env, grasp + np.array([0.0, 0.0, HOVER_HEIGHT]), gripper)
            settled = np.linalg.norm((grasp - pos)[:2]) < 0.002 and err < 0.004 and gripper == 0.0
            if settled or self.t_phase > 30:
                self._next("descend", keep_integral=True)
        elif p == "descend":
            depth = min(HOVER_HEIGHT, DESCEND_SPEED * self.t_phase)
            target = grasp + np.array([0.0, 0.0, HOVER_HEIGHT - depth])
            action, err = self._move(env, target, self._preshape(env))
            if (depth >= HOVER_HEIGHT and self._arrived(err, 0.004)) or self.t_phase > 40:
                self.grasp_point = grasp  # held while closing, even if the bowl shifts
                self._next("close")
        elif p == "close":
            action, _ = self._move(env, self.grasp_point, 1.0)
            if self.t_phase >= CLOSE_STEPS:
                lowest = max(plate[2] + CARRY_CLEARANCE, bowl[2] + LIFT_HEIGHT) + GRASP_HEIGHT
                self.carry_z = max(lowest, TRAVEL_Z)
                self.slide_to = pos + self.escape
                self.picked_z = bowl[2]
                self._next("slide" if self.escape.any() else "lift")
        elif p == "slide":  # out from under an overhang (a cabinet's top) before lifting
            action, err = self._move(env, self.slide_to, 1.0)
            if err < 0.004 or self.t_phase > 25:
                self._next("lift")
        elif p == "lift":
            action, err = self._move(env, np.array([pos[0], pos[1], self.carry_z]), 1.0)
            if err < 0.02 or self.t_phase > 40:
                # The bowl stayed behind (the fingers slipped off the rim): open and grasp again.
                if bowl[2] - self.picked_z < 0.04 and self.regrasps < MAX_REGRASPS:
                    self.regrasps += 1
                    self._plan(env, ceiling=pos[2] - 0.03)  # the bowl may have moved
                    self._next("above")
                else:
                    self._next("carry")
        elif p == "carry":
            target = plate + self.side
            target[2] = self.carry_z
            action, err = self._move(env, target, 1.0)
            if err < 0.01 or self.t_phase > 60:
                self._next("lower")
        elif p == "lower":
            target = plate + self.side + np.array([0.0, 0.0, PLACE_HEIGHT + GRASP_HEIGHT])
            action, err = self._move(env, target, 1.0)
            if self._arrived(err, 0.008) or self.t_phase > 40:
                self._next("release")
        elif p == "release":
            action, _ = self._move(env, pos, -1.0)
            if self.t_phase >= 10:
                self._next("retreat")
        else:
            action, _ = self._move(env, pos + np.array([0.0, 0.0, 0.05]), -1.0)
        return action.astype(np.float32)
