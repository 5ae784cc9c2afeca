"""`push`: publish a run's checkpoint to the Hub in LeRobot's layout (the policy folder's config,
weights, processor files and stats), with train_config.json, a model card and the training curves;
create the repo (and branch) when needed and record the push in the store."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token

from fpoctl.errors import FpoctlError, NotFoundError
from fpoctl.hub import card, curves, layout
from fpoctl.hub.aliases import alias_target
from fpoctl.hub.client import with_retries
from fpoctl.hub.errors import (
    LOGIN_HINT,
    HubContext,
    InvalidCheckpointError,
    NoCheckpointError,
    NotLoggedInError,
)
from fpoctl.hub.pull import inspect
from fpoctl.settings import Settings
from fpoctl.sources import check_repo_id
from fpoctl.store import Checkpoint, Run, Store
from fpoctl.store.checkpoints import verify_checkpoint

CURVES_FILE = "training_curves.png"


@dataclass(frozen=True)
class PushFile:
    """One file of the commit: its name in the repo and where it is read from."""

    path_in_repo: str
    source: Path

    @property
    def size(self) -> int:
        """Bytes."""
        return self.source.stat().st_size


@dataclass(frozen=True)
class PushPlan:
    """What a push uploads."""

    run: Run
    checkpoint: Checkpoint
    policy_type: str
    files: list[PushFile]


@dataclass(frozen=True)
class PushResult:
    """A finished push (or, for a dry run, the plan only)."""

    plan: PushPlan
    repo: str
    branch: str
    commit_url: str = ""
    commit_sha: str = ""


def select_checkpoint(store: Store, run: Run, which: str) -> Checkpoint:
    """`best` (the one marked best, else the last), `last`, or an iteration number."""
    ckpts = store.checkpoints(run.id)
    if not ckpts:
        raise NoCheckpointError(f"run {run.id} ({run.name}) has no checkpoint yet: nothing to push")
    if which == "last":
        return ckpts[-1]
    if which == "best":
        best = [c for c in ckpts if c.is_best]
        return best[-1] if best else ckpts[-1]
    if which.isdigit():
        for c in ckpts:
            if c.step == int(which):
                return c
        steps = ", ".join(str(c.step) for c in ckpts)
        raise NotFoundError(f"run {run.id} has no checkpoint at iteration {which} (it has: {steps})")
    raise FpoctlError(f"--checkpoint {which!r}: expected best, last or an iteration number")


def base_model(store: Store, home: Path, run: Run, _seen: frozenset[int] = frozenset()) -> str | None:
    """The Hub repo the run started from: config `base_model`, else its `--init` (a pulled model,
    an alias, a repo id, or a run: that run's base), else its policy (None: trained from scratch)."""
    cfg = run.config or {}
    candidates = [cfg.get("base_model"), cfg.get("init"),
                  cfg.get("policy") if isinstance(cfg.get("policy"), str) else None, run.policy]
    pulled = {m.alias: m.repo for m in store.models() if m.alias}
    for ref in filter(None, candidates):
        ref = str(ref).split("@")[0]
        repo = pulled.get(ref) or alias_target(ref, home)
        if repo:
            return repo
        if ref.count("/") == 1 and not Path(ref).exists():
            return ref
        try:
            parent = store.get_run(ref)
        except NotFoundError:
            continue
        if parent.id != run.id and parent.id not in _seen:
            return base_model(store, home, parent, _seen | {run.id})
    return None


def success_summary(store: Store, run_id: int) -> tuple[str, dict[str, float]]:
    """First / last / best success of a run: evaluation metrics, else the rollouts'."""
    for key in ("eval/success_rate", "rollout/success_rate"):
        values = [v for _, v in store.series(run_id, key)]
        if values:
            return key, {"first": values[0], "last": values[-1], "best": max(values)}
    return "eval/success_rate", {}


def plan_push(store: Store, home: Path, run_ref: str, repo: str, which: str, staging: Path) -> PushPlan:
    """Check the checkpoint and write the generated files (config, card, curves) into `staging`."""
    run = store.get_run(run_ref)
    ckpt = select_checkpoint(store, run, which)
    verify_checkpoint(Path(ckpt.path), ckpt.sha256)
    policy_dir = Path(ckpt.path) / "policy"
    if not policy_dir.is_dir():
        raise InvalidCheckpointError(f"checkpoint of run {run.id} at iteration {ckpt.step}: "
                                     f"{policy_dir} is missing")
    kind = layout.check_layout(policy_dir)
    info = inspect(policy_dir, f"checkpoint {policy_dir}", kind)
    files = [PushFile(f.name, f) for f in layout.policy_files(policy_dir)]

    config = card.scrub(run.config or {}, get_token())
    (staging / "train_config.json").write_text(json.dumps(config, indent=2, default=str))
    has_curves = curves.plot_training_curves(store, run.id, staging / CURVES_FILE)
    generated = ["train_config.json", "README.md"] + ([CURVES_FILE] if has_curves else [])

    success_key, success = success_summary(store, run.id)
    env_steps = store.series(run.id, curves.X_KEY)
    facts = card.CardFacts(
        repo=repo, policy_type=kind, task=run.task, run_name=run.name, run_id=run.id,
        checkpoint_step=ckpt.step, n_params=info.n_params, base_model=base_model(store, home, run),
        success=success, success_key=success_key,
        checkpoint_success=(ckpt.metrics or {}).get(success_key),
        evaluations=[{"task": e.task, "episodes": e.episodes, "success_rate": e.success_rate,
                      "mean_return": e.mean_return, "source": e.source}
                     for e in reversed(store.evaluations(run.id))],
        hyperparameters=card.key_hyperparameters(config), env_steps=env_steps[-1][1] if env_steps else None,
        git_sha=run.git_sha, curves_file=CURVES_FILE if has_curves else None,
        files=sorted([f.path_in_repo for f in files] + generated),
    )
    (staging / "README.md").write_text(card.render(facts))
    files += [PushFile(name, staging / name) for name in generated]
    return PushPlan(run, ckpt, kind, sorted(files, key=lambda f: f.path_in_repo))


def push(store: Store, home: Path, run_ref: str, repo: str, staging: Path, *, which: str = "best",
         private: bool = False, branch: str = "main", dry_run: bool = False,
         say: Callable[[str], None] = lambda _: None) -> PushResult:
    """Push (or, with `dry_run`, only plan) a run's checkpoint; see the module docstring."""
    check_repo_id(repo)
    api = HfApi()
    ctx = HubContext(repo, branch, "push to", write=True)
    if not dry_run:
        # Check the login first: verifying and hashing a multi-GB checkpoint comes next.
        if get_token() is None:
            raise NotLoggedInError(f"pushing to the Hub needs a token: {LOGIN_HINT}")
        with_retries(api.whoami, ctx, say=say)
    plan = plan_push(store, home, run_ref, repo, which, staging)
    if dry_run:
        return PushResult(plan, repo, branch)
    with_retries(lambda: api.create_repo(repo, private=private, exist_ok=True), ctx, say=say)
    if branch != "main":
        with_retries(lambda: api.create_branch(repo, branch=branch, exist_ok=True), ctx, say=say)
    ops = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.source)) for f in plan.files]
    message = f"fpoctl: run {plan.run.name} (#{plan.run.id}), checkpoint at iteration {plan.checkpoint.step}"
    say(f"uploading {len(ops)} files to {repo}@{branch}")
    info = with_retries(lambda: api.create_commit(repo, ops, commit_message=message, revision=branch),
                        ctx, say=say)
    store.add_push(run_id=plan.run.id, checkpoint_id=plan.checkpoint.id, repo=repo, branch=branch,
                   private=private, commit_url=info.commit_url, commit_sha=info.oid)
    store.add_event(plan.run.id, f"pushed iteration {plan.checkpoint.step} to {repo}@{branch} "
                    f"(commit {info.oid[:10]})", kind="push")
    return PushResult(plan, repo, branch, info.commit_url, info.oid)


def push_run(settings: Settings, run_id: int, repo: str) -> str:
    """Push a run's best checkpoint to `repo` (the dashboard's `p` key); a one-line result."""
    import tempfile

    with Store(settings.db_url) as store, tempfile.TemporaryDirectory(prefix="fpoctl-push-") as staging:
        result = push(store, settings.home, str(run_id), repo, Path(staging))
    return f"pushed run {run_id} (iteration {result.plan.checkpoint.step}) to {repo}: {result.commit_url}"
