"""Gated, idempotent, resumable push of a release (``huggingface_hub`` does the transport).

For each artefact of a :class:`~polyclinic.hub.release.ReleaseConfig`:

1. **prepare** the exact files of the repo: ``final/`` of a run (+ the rendered model card), or the Parquet
   shards of a dataset folder (+ its card with ``configs:`` and ``dataset_info``); cards are also written to
   ``<root>/<staging_dir>/<org>__<name>/README.md`` for review;
2. **gate** every repo of the release (card, safetensors-only, secrets, PHI) *before anything is sent*;
3. **diff** against the remote tree (``list_repo_tree``: git blob sha1 for regular files, sha256 for LFS);
   unchanged repos get no commit at all;
4. ``create_repo(exist_ok=True)`` -> ``preupload_lfs_files`` -> ONE ``create_commit(parent_commit=head)``
   -> ``create_tag(version)`` (+ ``create_branch``). An interrupted push (after the LFS upload, before the
   commit) simply runs again: the server reports the LFS objects as present, so nothing is re-uploaded.

``dry_run=True`` builds and gates everything, reads the remote tree when reachable (GET requests only) and
reports per repo which files would be added, changed or deleted; it sends nothing.

The token comes from ``HF_TOKEN`` or the ``hf auth login`` store; it is never printed, logged or written
(every message passes through :func:`polyclinic.hub.gates.mask_secrets`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from polyclinic.errors import UserError
from polyclinic.hub import gates as gates_mod
from polyclinic.hub.gates import GateRefused, GateResult, mask_secrets
from polyclinic.hub.release import MODEL_KINDS, ArtefactSpec, ReleaseConfig
from polyclinic.io import atomic_write_text, sha256_file
from polyclinic.logging_utils import get_logger

log = get_logger("hub.push")

SKIP_NAMES = {"COMPLETE", ".DS_Store"}
KEEP_REMOTE = {".gitattributes"}


class PushInterrupted(RuntimeError):
    """Raised by the ``stop_before_commit`` test hook (simulates a kill between LFS upload and commit)."""


class _MaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        masked = mask_secrets(msg)
        if masked != msg:
            record.msg, record.args = masked, ()
        return True


_MASK = _MaskFilter()


def install_log_masking() -> None:
    """Mask token values in every record that reaches the root handlers (logger filters do not see children)."""
    for handler in logging.getLogger().handlers:
        if _MASK not in handler.filters:
            handler.addFilter(_MASK)
    for name in ("huggingface_hub", "polyclinic"):  # records logged directly on these loggers
        if _MASK not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_MASK)


# --------------------------------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class RepoPlan:
    spec: ArtefactSpec
    files: dict[str, Path | bytes]
    card: str
    card_problems: list[str] = field(default_factory=list)
    verification: dict | None = None
    gates: list[GateResult] = field(default_factory=list)
    staging: Path | None = None

    @property
    def repo_id(self) -> str:
        return self.spec.repo_id

    @property
    def repo_type(self) -> str:
        return self.spec.repo_type


def _size(src: Path | bytes) -> int:
    return len(src) if isinstance(src, (bytes, bytearray)) else src.stat().st_size


def _collect(folder: Path, patterns: Iterable[str] = ("**/*",)) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for pattern in patterns:
        for p in sorted(folder.glob(pattern)):
            rel = p.relative_to(folder).as_posix()
            if not p.is_file() or p.name in SKIP_NAMES or any(part.startswith(".") for part in Path(rel).parts):
                continue
            if ".tmp-" in rel or ".old-" in rel or rel.endswith(".tmp"):
                continue
            files[rel] = p
    return files


def prepare_repo(cfg: ReleaseConfig, spec: ArtefactSpec) -> RepoPlan | None:
    """Files, card and card problems for one artefact (``None`` for a missing optional artefact)."""
    from polyclinic.hub import cards

    path = cfg.artefact_path(spec)
    if not path.exists():
        if spec.build is not None and spec.kind in ("benchmark", "pairs"):
            from polyclinic.hub.benchmark_datasets import build_from_spec

            log.info("%s: building %s dataset into %s", spec.repo_id, spec.kind, path)
            try:
                build_from_spec(spec.build, path, root=cfg.root)
            except UserError as exc:
                if not spec.optional:
                    raise
                log.warning("%s: optional artefact skipped: building it failed: %s", spec.repo_id, exc)
                return None
        elif spec.optional:
            log.warning("%s: optional artefact %s is missing; skipped", spec.repo_id, path)
            return None
        else:
            raise UserError(f"{spec.repo_id}: artefact folder {path} does not exist (kind {spec.kind}, from `path:` in the release YAML)")
    if spec.kind in MODEL_KINDS:
        from polyclinic.hub.verify import local_verification

        final, eval_root = spec.model_folders(path)
        if not final.is_dir():
            raise UserError(f"{spec.repo_id}: {path} has no {final.relative_to(path)}/ model folder; "
                            "point `path` at a finished run folder" + (" that ran this phase" if spec.phase else ""))
        files: dict[str, Path | bytes] = dict(_collect(final))
        verification = local_verification(spec.kind, final)
        card = cards.render_model_card(path, spec, version=cfg.version, verification=verification)
        problems = cards.validate_card(card, "model", spec.kind)
        expected = cards.evals_to_eval_results(cards.read_eval_dir(eval_root), spec.kind)
        expected.append(cards.verification_eval_result(spec.kind, verification["value"], verification["metric"], verification["num_examples"]))
        if not problems:
            problems += cards.eval_roundtrip_problems(card, expected)
    else:
        layout = cards.dataset_layout(path)
        if not layout:
            raise UserError(f"{spec.repo_id}: {path} has no <config>/<split>-*.parquet shards")
        files = {rel: p for rel, p in _collect(path, ("*/*.parquet",)).items()}
        for extra in ("stats.json", "benchmark.json", "LICENSE", "LICENSE.md"):
            if (path / extra).is_file():
                files[extra] = path / extra
        verification = None
        card = cards.render_dataset_card(path, spec, version=cfg.version)
        problems = cards.validate_card(card, "dataset", spec.kind)
    files["README.md"] = card.encode("utf-8")
    staging = cfg.staging_path(spec)
    atomic_write_text(staging / "README.md", card)
    return RepoPlan(spec=spec, files=files, card=card, card_problems=problems, verification=verification, staging=staging)


def prepare_release(cfg: ReleaseConfig, allow: Iterable[str] = (), raise_on_refusal: bool = True) -> list[RepoPlan]:
    """Prepare every repo and run every gate; raise :class:`GateRefused` before anything is sent."""
    plans = []
    for spec in cfg.artefacts:
        plan = prepare_repo(cfg, spec)
        if plan is not None:
            plans.append(plan)
    refused: list[GateRefused] = []
    for plan in plans:
        plan.gates = gates_mod.run_gates(plan.repo_id, plan.files, repo_type=plan.repo_type, kind=plan.spec.kind,
                                         allow=allow, card_problems=plan.card_problems, raise_on_refusal=False)
        if any(g.status == "refused" for g in plan.gates):
            refused.append(GateRefused(plan.repo_id, plan.gates))
    if refused and raise_on_refusal:
        raise UserError("\n\n".join(str(e) for e in refused))
    return plans


# --------------------------------------------------------------------------------------------------------------------
# remote state and diff
# --------------------------------------------------------------------------------------------------------------------


def resolve_endpoint(cfg: ReleaseConfig | None = None) -> str:
    """The release's endpoint, else HF_ENDPOINT, else huggingface.co (one rule: :mod:`polyclinic.endpoints`)."""
    from polyclinic.endpoints import resolve_endpoint as resolve

    return resolve(cfg.endpoint if cfg is not None else None)


def resolve_token() -> str | None:
    tokens = gates_mod.current_tokens()
    return tokens[0] if tokens else None


@contextlib.contextmanager
def _transport(endpoint: str) -> Iterator[None]:
    """Use plain LFS uploads (no Xet) for any endpoint that is not huggingface.co (e.g. the local hub)."""
    from huggingface_hub import constants

    old = constants.HF_HUB_DISABLE_XET
    if "huggingface.co" not in endpoint:
        constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = old


def git_blob_sha1(src: Path | bytes) -> str:
    size = _size(src)
    h = hashlib.sha1(f"blob {size}\0".encode())
    _feed(h, src)
    return h.hexdigest()


def sha256(src: Path | bytes) -> str:
    return hashlib.sha256(src).hexdigest() if isinstance(src, (bytes, bytearray)) else sha256_file(src)


def _feed(h, src: Path | bytes) -> None:
    if isinstance(src, (bytes, bytearray)):
        h.update(src)
        return
    with open(src, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def remote_tree(api, repo_id: str, repo_type: str, revision: str = "main") -> tuple[str | None, dict]:
    """``(head sha, {path: RepoFile})`` of ``revision``; ``(None, {})`` when the repo or branch does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.hf_api import RepoFile

    try:
        info = api.repo_info(repo_id, repo_type=repo_type, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, {}
    sha = info.sha
    if not sha:
        return None, {}
    entries = api.list_repo_tree(repo_id, repo_type=repo_type, revision=sha, recursive=True)
    return sha, {e.path: e for e in entries if isinstance(e, RepoFile)}


def diff_files(files: dict[str, Path | bytes], remote: dict) -> dict[str, list[str]]:
    added, changed, unchanged = [], [], []
    for path, src in sorted(files.items()):
        r = remote.get(path)
        if r is None:
            added.append(path)
        elif r.size != _size(src):
            changed.append(path)
        elif r.lfs is not None:
            (unchanged if r.lfs.sha256 == sha256(src) else changed).append(path)
        else:
            (unchanged if r.blob_id == git_blob_sha1(src) else changed).append(path)
    deleted = sorted(p for p in remote if p not in files and p not in KEEP_REMOTE)
    return {"added": added, "changed": changed, "unchanged": unchanged, "deleted": deleted}


# --------------------------------------------------------------------------------------------------------------------
# push
# --------------------------------------------------------------------------------------------------------------------


def _hub_call(what: str, fn, *args, **kwargs):
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return fn(*args, **kwargs)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise UserError(mask_secrets(f"{what} failed: {exc}")) from None


def _repo_url(endpoint: str, spec: ArtefactSpec) -> str:
    return f"{endpoint}/{'datasets/' if spec.repo_type == 'dataset' else ''}{spec.repo_id}"


def _plan_summary(plan: RepoPlan) -> dict:
    return {
        "repo_id": plan.repo_id,
        "repo_type": plan.repo_type,
        "kind": plan.spec.kind,
        "files": [{"path": p, "size": _size(s)} for p, s in sorted(plan.files.items())],
        "total_bytes": sum(_size(s) for s in plan.files.values()),
        "card": str(plan.staging / "README.md") if plan.staging else None,
        "verification": plan.verification,
        "gates": [g.to_dict() for g in plan.gates],
    }


def _ensure_tag(api, cfg: ReleaseConfig, spec: ArtefactSpec, commit: str) -> str:
    refs = _hub_call(f"{spec.repo_id}: list refs", api.list_repo_refs, spec.repo_id, repo_type=spec.repo_type)
    existing = {t.name: t.target_commit for t in refs.tags}
    if existing.get(cfg.version) == commit:
        return "exists"
    if cfg.version in existing:
        if not cfg.move_tag:
            raise UserError(
                f"{spec.repo_id}: tag {cfg.version} already points at {existing[cfg.version][:12]}, not at the new commit "
                f"{commit[:12]}; bump `version` in the release YAML (or set move_tag: true to move it)"
            )
        _hub_call(f"{spec.repo_id}: delete tag", api.delete_tag, spec.repo_id, tag=cfg.version, repo_type=spec.repo_type)
        status = "moved"
    else:
        status = "created"
    _hub_call(f"{spec.repo_id}: create tag {cfg.version}", api.create_tag, spec.repo_id, tag=cfg.version,
              revision=commit, repo_type=spec.repo_type, tag_message=cfg.message())
    return status


def push_repo(api, cfg: ReleaseConfig, plan: RepoPlan, *, endpoint: str, dry_run: bool = False,
              stop_before_commit: bool = False) -> dict:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    spec = plan.spec
    t0 = time.perf_counter()
    report = _plan_summary(plan)
    report["url"] = _repo_url(endpoint, spec)
    if dry_run:
        try:
            head, remote = remote_tree(api, spec.repo_id, spec.repo_type)
            report["remote_checked"] = True
        except Exception as exc:  # noqa: BLE001 - a dry run must work offline too
            head, remote = None, {}
            report["remote_checked"] = False
            report["remote_error"] = mask_secrets(str(exc))[:300]
        diff = diff_files(plan.files, remote)
        report.update(diff=diff, head=head, would_commit=bool(diff["added"] or diff["changed"] or diff["deleted"]),
                      committed=False, seconds=round(time.perf_counter() - t0, 3))
        return report

    _hub_call(f"{spec.repo_id}: create_repo", api.create_repo, spec.repo_id, repo_type=spec.repo_type,
              private=spec.private, exist_ok=True)
    head, remote = _hub_call(f"{spec.repo_id}: read remote tree", remote_tree, api, spec.repo_id, spec.repo_type)
    diff = diff_files(plan.files, remote)
    report["diff"] = diff
    to_send = diff["added"] + diff["changed"]
    if not to_send and not diff["deleted"]:
        log.info("%s: unchanged at %s; no commit", spec.repo_id, (head or "")[:12])
        commit, committed = head, False
    else:
        additions = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=plan.files[p] if isinstance(plan.files[p], bytes) else str(plan.files[p]))
            for p in to_send
        ]
        deletions = [CommitOperationDelete(path_in_repo=p) for p in diff["deleted"]]
        log.info("%s: uploading %d file(s) (%d new, %d changed), deleting %d", spec.repo_id, len(additions),
                 len(diff["added"]), len(diff["changed"]), len(deletions))
        _hub_call(f"{spec.repo_id}: LFS upload", api.preupload_lfs_files, spec.repo_id, additions=additions,
                  repo_type=spec.repo_type, free_memory=False)
        if stop_before_commit:
            raise PushInterrupted(f"{spec.repo_id}: stopped after the LFS upload, before the commit (test hook)")
        description = _commit_description(cfg, plan, diff)
        info = _hub_call(f"{spec.repo_id}: create_commit", api.create_commit, spec.repo_id, operations=[*additions, *deletions],
                         commit_message=cfg.message(), commit_description=description, repo_type=spec.repo_type,
                         parent_commit=head)
        commit, committed = info.oid, True
        log.info("%s: committed %s", spec.repo_id, commit[:12])
    if commit is None:
        raise UserError(f"{spec.repo_id}: nothing to commit and the repo has no commit yet")
    report["tag"] = {"name": cfg.version, "status": _ensure_tag(api, cfg, spec, commit)}
    if cfg.branch:
        _hub_call(f"{spec.repo_id}: create branch {cfg.branch}", api.create_branch, spec.repo_id, branch=cfg.branch,
                  revision=commit, repo_type=spec.repo_type, exist_ok=True)
        report["branch"] = cfg.branch
    report.update(commit=commit, committed=committed, seconds=round(time.perf_counter() - t0, 3))
    return report


def _commit_description(cfg: ReleaseConfig, plan: RepoPlan, diff: dict) -> str:
    lines = [f"polyclinic release {cfg.version} ({plan.spec.kind})", ""]
    lines += [f"added: {p}" for p in diff["added"]] + [f"changed: {p}" for p in diff["changed"]]
    lines += [f"deleted: {p}" for p in diff["deleted"]]
    if plan.verification:
        v = plan.verification
        lines.append(f"verification slice: {v['metric']}={v['value']:.6f} on {v['num_examples']} examples")
    return "\n".join(lines)


def push_release(cfg: ReleaseConfig, *, dry_run: bool = False, allow: Iterable[str] = (),
                 only: list[str] | None = None, stop_before_commit: bool = False) -> dict:
    """Push every artefact of ``cfg``. Returns a JSON-able report (per repo: diff, commit, tag, gates, seconds).

    ``allow`` lists overridden gates (``card``, ``weights``, ``secrets``, ``paths``, ``phi``). ``only`` restricts to repo ids.
    ``stop_before_commit`` is a test hook that raises :class:`PushInterrupted` after the LFS upload.
    """
    from huggingface_hub import HfApi

    if only:
        unknown = set(only) - {a.repo_id for a in cfg.artefacts}
        if unknown:
            raise UserError(f"--only: {sorted(unknown)} not in the release ({', '.join(a.repo_id for a in cfg.artefacts)})")
        cfg = cfg.model_copy(update={"artefacts": [a for a in cfg.artefacts if a.repo_id in only]})
    if not cfg.artefacts:
        raise UserError("the release lists no artefacts")
    install_log_masking()
    t0 = time.perf_counter()
    endpoint = resolve_endpoint(cfg)
    plans = prepare_release(cfg, allow=allow, raise_on_refusal=not dry_run)
    refused = [p.repo_id for p in plans if any(g.status == "refused" for g in p.gates)]
    api = HfApi(endpoint=endpoint, token=resolve_token())
    repos = []
    with _transport(endpoint):
        for plan in plans:
            log.info("%s %s (%s) -> %s", "dry run:" if dry_run else "pushing", plan.repo_id, plan.spec.kind, endpoint)
            repos.append(push_repo(api, cfg, plan, endpoint=endpoint, dry_run=dry_run, stop_before_commit=stop_before_commit))
    return {
        "version": cfg.version,
        "endpoint": endpoint,
        "dry_run": dry_run,
        "refused": refused,
        "repos": repos,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def format_push_report(report: dict) -> str:
    lines = [f"release {report['version']} -> {report['endpoint']}{'  (DRY RUN: nothing sent)' if report['dry_run'] else ''}"]
    for r in report["repos"]:
        d = r.get("diff") or {}
        lines.append("")
        lines.append(f"{r['repo_type']} {r['repo_id']} ({r['kind']}): {len(r['files'])} files, {_human(r['total_bytes'])}")
        status = {p: s for s in ("added", "changed", "unchanged", "deleted") for p in d.get(s, [])}
        for f in r["files"]:
            lines.append(f"    {status.get(f['path'], '?'):<9} {_human(f['size']):>9}  {f['path']}")
        for p in d.get("deleted", []):
            lines.append(f"    {'deleted':<9} {'':>9}  {p}")
        for g in r["gates"]:
            extra = f" ({g['count']} findings)" if g["count"] else ""
            lines.append(f"    gate {g['gate']:<8} {g['status']}{extra}{'; ' + g['coverage'] if g.get('coverage') else ''}")
            for f in g["findings"][:5]:
                lines.append(f"        - {f}")
        if report["dry_run"]:
            checked = "" if r.get("remote_checked") else " (remote not reachable: compared with an empty repo)"
            lines.append(f"    would commit: {'yes' if r.get('would_commit') else 'no (unchanged)'}{checked}")
        else:
            tag = r.get("tag") or {}
            lines.append(f"    commit {str(r.get('commit'))[:12]} ({'new' if r.get('committed') else 'unchanged, no new commit'}), "
                         f"tag {tag.get('name')} {tag.get('status')}, {r.get('seconds')}s  {r.get('url')}")
    if report.get("refused"):
        lines.append("")
        lines.append(f"REFUSED by gates: {', '.join(report['refused'])}")
    return "\n".join(lines)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
