"""A small Hugging Face Hub look-alike for tests: the download and commit endpoints that the real
huggingface_hub client (2.x, xet disabled) calls, served from memory on 127.0.0.1.

Repos hold commits (path -> bytes) and branches; tokens map to users; repos can be private or
gated. Faults are injected per file: drop the connection part-way, stall, corrupt the body.
Every request is logged (method, path, whether it carried a token) so tests can assert on traffic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".png", ".pt")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as the ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    """Binary files are stored with LFS (their ETag is the sha256 of the content)."""
    return path.endswith(LFS_SUFFIXES)


def etag_of(path: str, data: bytes) -> str:
    """The ETag the Hub sends for a file: sha256 for LFS files, the git blob sha1 otherwise."""
    return hashlib.sha256(data).hexdigest() if is_lfs(path) else git_blob_sha1(data)


@dataclass
class HubRepo:
    """One model repo: commits (sha -> files) and branches (name -> sha)."""

    repo_id: str
    private: bool = False
    gated: bool = False
    accepted: set[str] = field(default_factory=set)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        """A branch name or a full commit sha -> commit sha (None if unknown)."""
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.commits else None

    def commit(self, files: dict[str, bytes], branch: str = "main", message: str = "",
               deleted: set[str] | None = None) -> str:
        """Add a commit on `branch` (created from the current main when new); returns its sha."""
        parent = self.branches.get(branch) or self.branches.get("main")
        content = dict(self.commits.get(parent, {})) if parent else {}
        for path in deleted or set():
            content.pop(path, None)
        content.update(files)
        digest = hashlib.sha1(f"{parent}\n{message}\n{time.time_ns()}".encode())
        for path in sorted(content):
            digest.update(f"{path}:{etag_of(path, content[path])}\n".encode())
        sha = digest.hexdigest()
        self.commits[sha] = content
        self.branches[branch] = sha
        self.messages[sha] = message
        return sha


@dataclass
class Fault:
    """A misbehaviour of GET on one file: stop after `drop_after` bytes, stall, or corrupt it."""

    drop_after: int | None = None
    stall_s: float = 0.0
    corrupt: bool = False
    reported_size: int | None = None  # a HEAD that announces this size instead of the real one
    times: int | None = None  # how many GETs misbehave (None: all)


@dataclass
class LoggedRequest:
    """One request the server saw."""

    method: str
    path: str
    authorized: bool


class HubState:
    """Everything the server knows; tests change it directly between calls."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.tokens: dict[str, str] = {}  # token -> user name
        self.orgs: dict[str, set[str]] = {}  # org -> members
        self.faults: dict[str, Fault] = {}  # file path in repo -> fault
        self.stall_api_s = 0.0  # every /api/ call waits this long before answering
        self.log: list[LoggedRequest] = []
        self.bodies: list[bytes] = []  # request bodies (tests grep them for secrets)
        self.lock = threading.Lock()

    def can_write(self, user: str | None, namespace: str) -> bool:
        """A user writes to their own namespace and to their organisations'."""
        return user is not None and (user == namespace or user in self.orgs.get(namespace, set()))

    def downloads(self, path: str) -> int:
        """How many GETs of a file (any repo, any revision) were served."""
        return sum(1 for r in self.log if r.method == "GET" and "/resolve/" in r.path
                   and r.path.endswith("/" + path))


class HubServer:
    """A running server: `url` for HF_ENDPOINT, `state` to arrange repos, users and faults."""

    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self.state))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> HubServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_user(self, user: str, token: str, orgs: tuple[str, ...] = ()) -> None:
        """A user with a token (and membership in organisations)."""
        self.state.tokens[token] = user
        for org in orgs:
            self.state.orgs.setdefault(org, set()).add(user)

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main",
                 private: bool = False, gated: bool = False, message: str = "initial") -> str:
        """Create (or extend) a repo with one commit; returns the commit sha."""
        repo = self.state.repos.setdefault(repo_id, HubRepo(repo_id, private=private, gated=gated))
        return repo.commit(files, branch, message)

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision."""
        repo = self.state.repos[repo_id]
        return repo.commits[repo.resolve(rev)]


class HubError(Exception):
    """An error answer: status, X-Error-Code, message."""

    def __init__(self, status: int, code: str | None, message: str, **body: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.body = status, code, message, body


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/agent-harnesses$"), "agent_harnesses"),
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$"), "info"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"),
     "tree"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<branch>[^/]+)$"), "branch"),
    ("GET", re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


def _make_handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        hub = state

    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    """Routes requests to `h_<name>` methods; HubError becomes a Hub-style error answer."""

    hub: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing ------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self.hub.lock:
            self.hub.log.append(LoggedRequest(method, unquote(split.path), bool(token)))
            if self.body:
                self.hub.bodies.append(self.body)
        if self.hub.stall_api_s and split.path.startswith("/api/"):
            time.sleep(self.hub.stall_api_s)
        try:
            self.user = self._user(token)
            for route_method, pattern, name in ROUTES:
                m = pattern.match(split.path)
                if m and route_method == method:
                    params = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                    getattr(self, f"h_{name}")(**params)
                    return
            raise HubError(404, None, f"no route {method} {split.path}")
        except HubError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _user(self, token: str) -> str | None:
        if not token:
            return None
        user = self.hub.tokens.get(token)
        if user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return user

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode())

    def _error(self, exc: HubError) -> None:
        headers = {"X-Error-Message": exc.message}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        self._send(exc.status, json.dumps({"error": exc.message, **exc.body}).encode(), headers)

    def _repo(self, repo_id: str, *, write: bool = False) -> HubRepo:
        repo = self.hub.repos.get(repo_id)
        namespace = repo_id.split("/")[0]
        visible = repo is not None and (not repo.private or self.hub.can_write(self.user, namespace))
        if not visible:
            # The Hub answers 401 to anonymous callers and 404 to logged-in ones (it never says "private").
            raise HubError(401 if self.user is None else 404, "RepoNotFound", "Repository not found")
        if write and not self.hub.can_write(self.user, namespace):
            raise HubError(401 if self.user is None else 403, None,
                           "You don't have the rights to write to this repo")
        return repo

    def _commit(self, repo: HubRepo, rev: str) -> tuple[str, dict[str, bytes]]:
        sha = repo.resolve(rev)
        if sha is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return sha, repo.commits[sha]

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, None, f"bad JSON: {exc}") from None

    # -- endpoints -----------------------------------------------------------------------
    def h_agent_harnesses(self) -> None:
        # The client's telemetry registry (cached a day in HF_HOME); an empty one detects nothing.
        self._json({"standardEnvVars": [], "harnesses": {}})

    def h_whoami(self) -> None:
        if self.user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        self._json({"type": "user", "name": self.user,
                    "orgs": [{"name": o} for o, m in self.hub.orgs.items() if self.user in m],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def h_validate_yaml(self) -> None:
        self._json({"warnings": []})

    def h_info(self, repo: str, rev: str = "main") -> None:
        r = self._repo(repo)
        sha, files = self._commit(r, rev)
        self._json({"id": repo, "modelId": repo, "sha": sha, "private": r.private,
                    "gated": "manual" if r.gated else False, "disabled": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)]})

    def _entry(self, path: str, data: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data),
                                 "oid": git_blob_sha1(data)}
        if is_lfs(path):
            pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:"
                       f"{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n").encode()
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": len(pointer)}
        return entry

    def h_tree(self, repo: str, rev: str, path: str = "") -> None:
        _, files = self._commit(self._repo(repo), rev)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        out, folders = [], set()
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            for i in range(rest.count("/")):
                folders.add(prefix + "/".join(rest.split("/")[: i + 1]))
            out.append(self._entry(p, files[p]))
        out += [{"type": "directory", "path": f, "size": 0, "oid": "0" * 40} for f in sorted(folders)]
        self._json(out)

    def h_paths_info(self, repo: str, rev: str) -> None:
        _, files = self._commit(self._repo(repo), rev)
        body = self.body.decode()
        paths = (self._json_body().get("paths", []) if body.startswith("{")
                 else parse_qs(body).get("paths", []))
        self._json([self._entry(p, files[p]) for p in paths if p in files])

    def h_resolve(self, repo: str, rev: str, path: str) -> None:
        r = self._repo(repo)
        if r.gated and self.user not in r.accepted:
            if self.user is None:
                raise HubError(401, "GatedRepo", f"Access to model {repo} is restricted. You must "
                               "have access to it and be authenticated to access it. Please log in.")
            raise HubError(403, "GatedRepo", f"Access to model {repo} is restricted and you are not "
                           "in the authorized list. Visit the repo page to ask for access.")
        sha, files = self._commit(r, rev)
        if path not in files:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {rev}")
        data = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag_of(path, data)}"', "Accept-Ranges": "bytes"}
        if self.command == "HEAD":
            fault = self.hub.faults.get(path)
            if fault and fault.reported_size is not None:
                headers["Content-Length"] = str(fault.reported_size)
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            self._send(200, data, headers, "application/octet-stream")
            return
        start = 0
        rng = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if rng:
            start = int(rng.group(1))
        fault = self._take_fault(path)
        body = data[start:]
        if fault and fault.corrupt:
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        status = 206 if rng else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if fault and fault.stall_s:
            time.sleep(fault.stall_s)
        if fault and fault.drop_after is not None:
            self.wfile.write(body[: fault.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # cut the connection mid-file
            return
        self.wfile.write(body)

    def _take_fault(self, path: str) -> Fault | None:
        with self.hub.lock:
            fault = self.hub.faults.get(path)
            if fault is None:
                return None
            if fault.times is not None:
                if fault.times <= 0:
                    return None
                fault.times -= 1
            return fault

    def h_create_repo(self) -> None:
        body = self._json_body()
        namespace = body.get("organization") or self.user
        if self.user is None:
            raise HubError(401, None, "You must be authenticated to create a repo")
        if not self.hub.can_write(self.user, namespace):
            raise HubError(403, None, f"You don't have the rights to create a model under {namespace}")
        repo_id = f"{namespace}/{body['name']}"
        if repo_id in self.hub.repos:
            # The Hub's 409 still carries the repo URL (the client reads it when exist_ok=True).
            raise HubError(409, None, "You already created this model repo",
                           url=f"http://{self.headers['Host']}/{repo_id}")
        private = body.get("private") or body.get("visibility") == "private"
        repo = self.hub.repos[repo_id] = HubRepo(repo_id, private=bool(private))
        repo.commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                    message="initial commit")
        self._json({"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})

    def h_branch(self, repo: str, branch: str) -> None:
        r = self._repo(repo, write=True)
        if branch in r.branches:
            raise HubError(409, None, f"Branch {branch} already exists")
        start = self._json_body().get("startingPoint") or "main"
        sha, _ = self._commit(r, start)
        r.branches[branch] = sha
        self._json({})

    def h_preupload(self, repo: str, rev: str) -> None:
        r = self._repo(repo, write=True)
        current = r.commits.get(r.resolve(rev) or "", {})
        files = []
        for f in self._json_body().get("files", []):
            existing = current.get(f["path"])
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_sha1(existing) if existing is not None else None})
        self._json({"files": files, "commitOid": r.resolve(rev)})

    def h_commit(self, repo: str, rev: str) -> None:
        r = self._repo(repo, write=True)
        if r.resolve(rev) is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        summary, files, deleted = "", {}, set()
        for line in self.body.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value.get("summary", "")
            elif item["key"] == "file":
                files[_safe_repo_path(value["path"])] = base64.b64decode(value["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deleted.add(value["path"])
            else:
                raise HubError(400, None, f"unsupported commit operation {item['key']}")
        sha = r.commit(files, rev, summary, deleted)
        self._json({"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{sha}",
                    "commitOid": sha, "pullRequestUrl": None, "success": True})


def _safe_repo_path(path: str) -> str:
    if path.startswith("/") or ".." in path.split("/"):
        raise HubError(400, None, f"invalid path {path!r}")
    return path


# -- helpers for the hub tests ---------------------------------------------------------------------
def policy_folder(path: Path, *, seed: int = 0, hidden: int = 64) -> Path:
    """A small MLP flow policy saved in LeRobot's layout: config.json, model.safetensors, and
    processor JSONs whose normaliser steps name their stats files (as LeRobot writes them)."""
    import torch
    from safetensors.torch import save_file

    from policies.mlp import MLPFlowConfig, MLPFlowPolicy

    torch.manual_seed(seed)
    policy = MLPFlowPolicy(MLPFlowConfig(obs_dim=6, action_dim=3, horizon=4, hidden=hidden, depth=2))
    policy.save_pretrained(path)
    pre_stats = "policy_preprocessor_step_2_normalizer_processor.safetensors"
    post_stats = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    save_file({"observation.state.mean": torch.randn(6), "observation.state.std": torch.rand(6) + 0.5},
              str(path / pre_stats))
    save_file({"action.mean": torch.randn(3), "action.std": torch.rand(3) + 0.5}, str(path / post_stats))
    features = {"observation.state": {"type": "STATE", "shape": [6]},
                "action": {"type": "ACTION", "shape": [3]}}
    (path / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "normalizer_processor", "config": {"eps": 1e-8, "features": features},
         "state_file": pre_stats},
    ]}, indent=2))
    (path / "policy_postprocessor.json").write_text(json.dumps({"name": "policy_postprocessor", "steps": [
        {"registry_name": "unnormalizer_processor", "config": {"eps": 1e-8, "features": features},
         "state_file": post_stats},
    ]}, indent=2))
    return path


def folder_files(path: Path) -> dict[str, bytes]:
    """Every file directly in a folder, by name."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def hub_env(server: HubServer, tmp_path: Path, token: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess talking to `server`: its own HF_HOME and fpoctl home,
    xet off, fast retries, and HF_TOKEN only when given."""
    env = {
        "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "FPOCTL_HOME": str(tmp_path / "home"),
        "FPOCTL_HUB_RETRIES": "2", "FPOCTL_HUB_BACKOFF_S": "0.05", "FPOCTL_HUB_TIMEOUT_S": "5",
        "HF_TOKEN": token or "",
    }
    env.update(extra)
    return env
