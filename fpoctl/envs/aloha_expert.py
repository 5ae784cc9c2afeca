"""Scripted ALOHA experts, made the way ALOHA's authors made their scripted data.

From the episode's initial object poses, plan end-effector waypoints (xyz, quaternion, gripper)
for both arms, roll them out in gym-aloha's mocap task (`sim_end_effector.py`: each gripper is
welded to a mocap body that follows the waypoints), record the joint trajectory it produces and
replay it as 14-d joint targets in the joint-space task fpoctl exposes. The planner looks at the
mocap task's object poses again where it matters (the handover, the insertion); the replay is
open loop: the same seed gives the same object poses, hence the same trajectory, in both tasks.
Measured over 50 episodes in the joint task: transfer-cube 100%, insertion 86%.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.base import Expert


@dataclass(frozen=True)
class Waypoint:
    """Where one gripper is at env step `t`: position, orientation (w, x, y, z), opening (0..1)."""

    t: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def axis_quat(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """The rotation by `degrees` about unit `axis`."""
    half = np.deg2rad(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, float)])


def quat_conj(q: np.ndarray) -> np.ndarray:
    """The inverse of a unit quaternion."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v rotated by unit quaternion q."""
    return quat_mul(quat_mul(q, np.concatenate([[0.0], v])), quat_conj(q))[1:]


def slerp(a: np.ndarray, b: np.ndarray, frac: float) -> np.ndarray:
    """Spherical interpolation from a (frac 0) to b (frac 1), the short way round."""
    dot = float(np.dot(a, b))
    if dot < 0:
        b, dot = -b, -dot
    if dot > 0.9995:
        q = a + frac * (b - a)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - frac) * theta) * a + np.sin(frac * theta) * b) / np.sin(theta)


def pose_at(waypoints: list[Waypoint], t: int) -> np.ndarray:
    """[xyz, quat, gripper] (8) at step t: linear in position and opening, slerp in orientation
    between the waypoints around t; the last waypoint holds after its time."""
    for cur, nxt in itertools.pairwise(waypoints):
        if cur.t <= t < nxt.t:
            frac = (t - cur.t) / (nxt.t - cur.t)
            return np.concatenate([cur.xyz + frac * (nxt.xyz - cur.xyz), slerp(cur.quat, nxt.quat, frac),
                                   [cur.gripper + frac * (nxt.gripper - cur.gripper)]])
    last = waypoints[-1]
    return np.concatenate([last.xyz, last.quat, [last.gripper]])


def _wp(t: int, xyz: np.ndarray, quat: np.ndarray, gripper: float) -> Waypoint:
    return Waypoint(t, np.asarray(xyz, float), np.asarray(quat, float), gripper)


@dataclass(frozen=True)
class Scene:
    """What a planner sees at step t: the objects' poses now and the poses the mocap bodies hold."""

    t: int
    env_state: np.ndarray
    left: np.ndarray
    right: np.ndarray


@dataclass(frozen=True)
class Plan:
    """Waypoints of both arms from scene.t on, and the step at which to plan again (None: never)."""

    left: list[Waypoint]
    right: list[Waypoint]
    replan_at: int | None = None


def _v(x: float, y: float, z: float) -> np.ndarray:
    """An offset (m)."""
    return np.array([x, y, z])


def _hold(t: int, pose: np.ndarray, gripper: float) -> Waypoint:
    return _wp(t, pose[:3], pose[3:], gripper)


def _tilted(pose: np.ndarray, degrees: float, toward: np.ndarray | None = None) -> np.ndarray:
    """A start orientation pitched about the gripper's y axis (down onto the table) and, given a
    target, turned about the vertical to point from its arm's base at it: the waist alone then
    aims the gripper (a fixed yaw off the arm's line twists forearm and wrist against each other,
    and the arm stalls above the object)."""
    quat = quat_mul(pose[3:], axis_quat((0, 1, 0), degrees))
    if toward is None:
        return quat
    base = BASES["left" if pose[0] < 0 else "right"]
    yaw = np.arctan2(toward[1] - base[1], abs(toward[0] - base[0]))
    return quat_mul(axis_quat((0, 0, 1), np.rad2deg(yaw if pose[0] < 0 else -yaw)), quat)


BASES = {"left": np.array([-0.469, 0.5]), "right": np.array([0.469, 0.5])}  # the arms' waists (x, y)
CUBE_HALF, SOCKET_HALF = 0.02, 0.022  # resting heights of the cube's and the socket's centres
PEG_GRASP_Z = 0.015  # the peg is 2 cm high: the fingertips reach beyond the mocap point
# Degrees a picking gripper is pitched down from its start orientation. Straight down grasps the
# cube squarely (measured over 20 episodes: 60 -> 70%, 75 -> 90%, 90 -> 100% transfer success).
CUBE_TILT, INSERT_TILT = 90, 60
MEET_CUBE = np.array([0.0, 0.5, 0.25])  # where the right gripper brings the cube
HANDOVER_REACH = np.array([0.03, 0.0, 0.0])  # left mocap point beyond the cube: pads on the cube


def plan_transfer_cube(scene: Scene) -> Plan:
    """First: the right arm goes above the cube, down, closes and brings it to the meeting point,
    while the left waits beside it (fingers turned to close vertically). Then, from where the cube
    actually is: the left closes on it, the right opens, and both draw apart."""
    t, left_pose, right_pose = scene.t, scene.left, scene.right
    meet_left = axis_quat((1, 0, 0), 90)
    if t == 0:
        cube = np.array([scene.env_state[0], scene.env_state[1], CUBE_HALF])  # it drops onto the table
        pick, carry = _tilted(right_pose, -CUBE_TILT, cube), _tilted(right_pose, -CUBE_TILT)
        right = [_hold(0, right_pose, 0.0), _wp(60, cube + _v(0, 0, 0.07), pick, 1.0),
                 _wp(90, cube, pick, 1.0), _wp(110, cube, pick, 0.0),
                 _wp(135, MEET_CUBE + _v(0.05, 0, 0), carry, 0.0), _wp(150, MEET_CUBE, carry, 0.0)]
        left = [_hold(0, left_pose, 0.0), _wp(100, MEET_CUBE + _v(-0.12, 0, -0.02), meet_left, 1.0)]
        return Plan(left, right, replan_at=160)
    cube = scene.env_state[:3]
    left = [_hold(t, left_pose, 1.0), _wp(t + 40, cube + HANDOVER_REACH, meet_left, 1.0),
            _wp(t + 60, cube + HANDOVER_REACH, meet_left, 0.0),
            _wp(t + 80, cube + HANDOVER_REACH, meet_left, 0.0),
            _wp(t + 110, cube + HANDOVER_REACH + _v(-0.1, 0, 0), meet_left, 0.0)]
    right = [_hold(t, right_pose, 0.0), _hold(t + 60, right_pose, 0.0), _hold(t + 80, right_pose, 1.0),
             _wp(t + 110, right_pose[:3] + _v(0.1, 0, 0), right_pose[3:], 1.0)]
    return Plan(left, right)


MEET_INSERT = np.array([0.0, 0.5, 0.15])
PEG_GRIP = 0.0  # mocap point along the peg's axis from its centre (+x: toward its right end)
PEG_HALF_LENGTH = SOCKET_HALF_LENGTH = 0.06
PIN_PUSH = 0.025  # the peg's tip is driven to here from the socket's centre: past the pin's end (0.04)
ON_AXIS = 0.004  # the tip this close to the hole's axis may go in
INSERT_STEP, INSERT_EVERY = 0.01, 8  # the peg moves at most 1 cm per 8 steps


def plan_insertion(scene: Scene) -> Plan:
    """First: the left arm picks the socket, the right the peg, and both lift them to either side
    of the meeting point. Then, from where peg and socket actually are, replanned every few
    steps: the right brings the peg's tip onto the socket's axis and pushes it in to the pin."""
    t, left_pose, right_pose = scene.t, scene.left, scene.right
    if t == 0:
        peg = np.array([scene.env_state[0] + PEG_GRIP, scene.env_state[1], PEG_GRASP_Z])
        socket = np.array([scene.env_state[7], scene.env_state[8], SOCKET_HALF])
        pick_left = _tilted(left_pose, INSERT_TILT, socket)
        pick_right = _tilted(right_pose, -INSERT_TILT, peg)
        carry_left, carry_right = _tilted(left_pose, INSERT_TILT), _tilted(right_pose, -INSERT_TILT)
        left = [_hold(0, left_pose, 0.0), _wp(80, socket + _v(0, 0, 0.07), pick_left, 1.0),
                _wp(110, socket, pick_left, 1.0), _wp(130, socket, pick_left, 0.0),
                _wp(145, socket, pick_left, 0.0), _wp(165, socket + _v(0, 0, 0.06), pick_left, 0.0),
                _wp(200, MEET_INSERT + _v(-0.1, 0, 0), carry_left, 0.0)]
        right = [_hold(0, right_pose, 0.0), _wp(80, peg + _v(0, 0, 0.07), pick_right, 1.0),
                 _wp(110, peg, pick_right, 1.0), _wp(130, peg, pick_right, 0.0),
                 _wp(145, peg, pick_right, 0.0), _wp(165, peg + _v(0, 0, 0.06), pick_right, 0.0),
                 _wp(200, MEET_INSERT + _v(0.12, 0, 0), carry_right, 0.0)]
        return Plan(left, right, replan_at=215)
    # Closed loop, every INSERT_EVERY steps: the held peg sags and swings in the grasp as the arm
    # moves, so a single straight move ends a centimetre off the hole (which has 8 mm to spare).
    peg, socket = scene.env_state[:7], scene.env_state[7:14]
    axis = quat_rotate(socket[3:], _v(1, 0, 0))  # the socket's hole opens toward +x
    tip = peg[:3] + quat_rotate(peg[3:], _v(-PEG_HALF_LENGTH, 0, 0))  # the peg's end in the socket's side
    depth = float(np.dot(tip - socket[:3], axis))  # along the hole's axis, from the socket's centre
    off_axis = np.linalg.norm((tip - socket[:3]) - depth * axis)
    if off_axis < ON_AXIS:
        depth = max(PIN_PUSH, depth - INSERT_STEP)  # in line: push on toward the pin
    else:
        depth = max(depth, SOCKET_HALF_LENGTH + 0.02)  # out of line: line up before the hole
    step = socket[:3] + depth * axis - tip
    step *= min(1.0, INSERT_STEP / max(float(np.linalg.norm(step)), 1e-9))
    target = right_pose[:3] + step
    left = [_hold(t, left_pose, 0.0)]
    right = [_hold(t, right_pose, 0.0), _wp(t + INSERT_EVERY, target, right_pose[3:], 0.0)]
    return Plan(left, right, replan_at=t + INSERT_EVERY)


PLANS = {"transfer_cube": plan_transfer_cube, "insertion": plan_insertion}


def _mocap_task(task_name: str, object_pose: np.ndarray) -> Any:
    """gym-aloha's mocap task of `task_name`, starting from `object_pose` (env_state layout), and
    observing without rendering."""
    from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask, TransferCubeEndEffectorTask

    base = {"transfer_cube": TransferCubeEndEffectorTask, "insertion": InsertionEndEffectorTask}[task_name]

    class PosedMocapTask(base):
        def initialize_episode(self, physics):
            self.initialize_robots(physics)
            physics.data.qpos[16:16 + len(object_pose)] = object_pose  # the objects' free joints
            super(base, self).initialize_episode(physics)

        def get_observation(self, physics):
            obs = collections.OrderedDict()
            obs["qpos"] = self.get_qpos(physics)
            obs["env_state"] = self.get_env_state(physics)
            obs["gripper_ctrl"] = physics.data.ctrl.copy()
            return obs

    return PosedMocapTask()


WELD_TORQUESCALE = 4.0


def make_mocap_env(task_name: str, object_pose: np.ndarray) -> Any:
    """The dm_control env of the mocap task, objects at `object_pose`."""
    from dm_control import mujoco as dm_mujoco
    from dm_control.rl import control
    from gym_aloha.constants import ASSETS_DIR, DT

    xml = ASSETS_DIR / f"bimanual_viperx_end_effector_{task_name}.xml"
    physics = dm_mujoco.Physics.from_xml_path(str(xml))
    physics.model.eq_data[:, 10] = WELD_TORQUESCALE
    return control.Environment(physics, _mocap_task(task_name, np.asarray(object_pose, float)),
                               time_limit=float("inf"), control_timestep=DT, flat_observation=False)


def start_mocap_poses(physics: Any) -> tuple[np.ndarray, np.ndarray]:
    """The mocap poses (xyz + quat, left and right) that hold the grippers where they are.

    A weld keeps body2 at relpose from body1: gripper = mocap + R(mocap) relpos, q(gripper) =
    q(mocap) relquat, with the relpose MuJoCo measured in the model's reference pose (arms
    straight out). There the mocap point lies 13.5 cm ahead of the gripper link, between the
    fingertips: it is the point the waypoints steer. (gym-aloha's fixed start mocap poses are
    the gripper links' own, which under MuJoCo 3 yank both arms 13.5 cm on the first step.)"""
    poses = []
    for k, side in enumerate(("left", "right")):
        link = f"vx300s_{side}/gripper_link"
        relpos, relquat = physics.model.eq_data[k, 3:6], physics.model.eq_data[k, 6:10]
        quat = quat_mul(physics.named.data.xquat[link], quat_conj(relquat))
        poses.append(np.concatenate([physics.named.data.xpos[link] - quat_rotate(quat, relpos), quat]))
    return poses[0], poses[1]


@dataclass
class MocapRollout:
    """The plan executed in the mocap task, after each step: joint targets [T, 14], stage rewards
    [T], object poses (env_state) [T, 7 or 14]."""

    joints: np.ndarray
    rewards: np.ndarray
    env_states: np.ndarray


def mocap_rollout(task_name: str, object_pose: np.ndarray, steps: int) -> MocapRollout:
    """Execute the task's plan in the mocap task for `steps` steps; record after each step the arm
    joints reached and the grippers' commanded openings (as ACT's record_sim_episodes does: a
    gripper's joint lags its command, and the command is what the joint task must be given)."""
    from gym_aloha.constants import normalize_puppet_gripper_position

    env = make_mocap_env(task_name, object_pose)
    ts = env.reset()
    planner = PLANS[task_name]
    plan = planner(Scene(0, np.asarray(ts.observation["env_state"]), *start_mocap_poses(env.physics)))
    joints, rewards, env_states = [], [], []
    for t in range(steps):
        if t == plan.replan_at:
            held = env.physics.data.mocap_pos, env.physics.data.mocap_quat
            poses = [np.concatenate([held[0][k], held[1][k]]) for k in (0, 1)]
            plan = planner(Scene(t, np.asarray(ts.observation["env_state"]), *poses))
        ts = env.step(np.concatenate([pose_at(plan.left, t), pose_at(plan.right, t)]))
        q = np.array(ts.observation["qpos"])
        ctrl = ts.observation["gripper_ctrl"]
        q[6], q[13] = normalize_puppet_gripper_position(ctrl[0]), normalize_puppet_gripper_position(ctrl[2])
        joints.append(q)
        rewards.append(ts.reward)
        env_states.append(np.array(ts.observation["env_state"]))
    env.close()
    return MocapRollout(np.asarray(joints), np.asarray(rewards, float), np.asarray(env_states))


class AlohaReplayExpert(Expert):
    """Plans and rolls out the episode in the mocap task at reset, then plays the recorded joint
    targets back one per step (the last one holds). Needs an AlohaEnv (privileged: its object
    poses), in either observation mode."""

    def __init__(self) -> None:
        self.joints = np.zeros((1, 14))
        self.t = 0

    def reset(self, env: gym.Env) -> None:
        aloha = env.unwrapped
        self.joints = mocap_rollout(aloha.task_name, aloha.object_pose, aloha.max_steps).joints
        self.t = 0

    def act(self, env: gym.Env, obs: dict) -> np.ndarray:
        target = self.joints[min(self.t, len(self.joints) - 1)]
        self.t += 1
        return env.unwrapped.action_from_joints(target)
