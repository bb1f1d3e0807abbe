"""`spillgate keys ...`, `spillgate usage` and `spillgate audit ...`: the admin API from a
terminal.

They talk to a running gateway (`--url`, default $SPILLGATE_URL or http://127.0.0.1:8000)
with the admin token (`--admin-token`, default $SPILLGATE_ADMIN_TOKEN), so the gateway
stays the one writer of keys and every replica sees the same rules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

import httpx

_KEY_COLUMNS = ("id", "name", "prefix", "models", "rpm", "tpm", "$/day", "$/month", "state")


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update and revoke API keys")
    _connection(keys)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key (shown once)")
    create.add_argument("--name", required=True)
    _key_options(create)
    listing = keys_sub.add_parser("list", help="list keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    update = keys_sub.add_parser("update", help="change a key's rules")
    update.add_argument("key", help="key id or name")
    update.add_argument("--name", help="a new name")
    _key_options(update)
    update.add_argument(
        "--clear",
        action="append",
        default=[],
        choices=["rpm", "tpm", "budget-day", "budget-month", "latency-budget-ms", "models"],
        help="remove a limit (repeatable)",
    )
    revoke = keys_sub.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key", help="key id or name")
    for leaf in (create, listing, update, revoke):
        _connection(leaf, argparse.SUPPRESS)  # also after the subcommand; keeps the outer value

    usage = sub.add_parser("usage", help="print usage: requests, tokens, spend, local share")
    _connection(usage)
    usage.add_argument("--group-by", choices=["key", "model", "target", "day"], default="key")
    usage.add_argument("--key", help="only this key (id or name)")
    usage.add_argument("--model", help="only this model")
    usage.add_argument("--target", help="only this target")
    usage.add_argument("--since", help="from this date (2025-01-31) or ISO time")
    usage.add_argument("--until", help="before this date or ISO time")

    audit = sub.add_parser("audit", help="the egress audit: what left for cloud providers")
    _connection(audit)
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    egress = audit_sub.add_parser(
        "egress",
        help="report what left: requests, targets, verdicts, detector versions, findings",
        description="Exit status 1 if any body that left carried an on-prem mark.",
    )
    egress.add_argument("--since", help="from this date (2025-01-31) or ISO time")
    egress.add_argument("--until", help="before this date or ISO time")
    egress.add_argument("--json", action="store_true", help="print the report as JSON")
    verify = audit_sub.add_parser(
        "verify",
        help="check the audit's hash chain",
        description="Exit status 0 when the chain holds, 1 when it is broken (printing where).",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    for leaf in (egress, verify):
        _connection(leaf, argparse.SUPPRESS)


def _connection(parser: argparse.ArgumentParser, default: Any = None) -> None:
    url = os.environ.get("SPILLGATE_URL", "http://127.0.0.1:8000")
    parser.add_argument("--url", default=url if default is None else default)
    token = os.environ.get("SPILLGATE_ADMIN_TOKEN")
    parser.add_argument("--admin-token", default=token if default is None else default)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", help="comma-separated model ids the key may use")
    parser.add_argument("--onprem-only", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--latency-budget-ms", type=int)
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--budget-day", type=float, help="cloud budget in USD per UTC day")
    parser.add_argument("--budget-month", type=float, help="cloud budget in USD per UTC month")
    parser.add_argument("--tag", action="append", default=[], help="KEY=VALUE (repeatable)")
    parser.add_argument("--log-prompts", action=argparse.BooleanOptionalAction, default=None)


def _key_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.name:
        body["name"] = args.name
    if args.models:
        body["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    for flag, field in (
        ("onprem_only", "onprem_only"),
        ("latency_budget_ms", "latency_budget_ms"),
        ("rpm", "rpm"),
        ("tpm", "tpm"),
        ("budget_day", "budget_day_usd"),
        ("budget_month", "budget_month_usd"),
        ("log_prompts", "log_prompts"),
    ):
        value = getattr(args, flag)
        if value is not None:
            body[field] = value
    if args.tag:
        pairs = [t.partition("=") for t in args.tag]
        bad = [t for t, (_, eq, _) in zip(args.tag, pairs, strict=True) if not eq]
        if bad:
            raise _Usage(f"--tag takes KEY=VALUE, got {bad[0]!r}")
        body["tags"] = {k: v for k, _, v in pairs}
    for name in getattr(args, "clear", []):
        field = {
            "budget-day": "budget_day_usd",
            "budget-month": "budget_month_usd",
            "models": "allowed_models",
            "latency-budget-ms": "latency_budget_ms",
        }.get(name, name)
        body[field] = [] if field == "allowed_models" else None
    return body


class _Usage(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    if not args.admin_token:
        print("spillgate: set --admin-token or SPILLGATE_ADMIN_TOKEN", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {args.admin_token}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30.0) as client:
            if args.command == "usage":
                return _usage(client, args)
            if args.command == "audit":
                return _audit(client, args)
            return _keys(client, args)
    except _Usage as err:
        print(f"spillgate: {err}", file=sys.stderr)
        return 2
    except httpx.HTTPError as err:
        print(f"spillgate: cannot reach the gateway at {args.url}: {err}", file=sys.stderr)
        return 1


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> Any:
    resp = client.request(method, path, **kw)
    if resp.status_code >= 400:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:200]
        raise _Usage(f"{resp.status_code}: {message}")
    return resp.json()


def _keys(client: httpx.Client, args: argparse.Namespace) -> int:
    cmd = args.keys_command
    if cmd == "create":
        key = _call(client, "POST", "/admin/keys", json=_key_body(args))
        print(f"created {key['id']} ({key['name']}). The key, shown this once:\n{key['key']}")
    elif cmd == "list":
        params = {"include_revoked": "true"} if args.all else {}
        keys = _call(client, "GET", "/admin/keys", params=params)["data"]
        _table(_KEY_COLUMNS, [_key_row(k) for k in keys])
    elif cmd == "update":
        body = _key_body(args)
        if not body:
            raise _Usage("nothing to change: give at least one option")
        key = _call(client, "PATCH", f"/admin/keys/{args.key}", json=body)
        _table(_KEY_COLUMNS, [_key_row(key)])
    else:
        key = _call(client, "DELETE", f"/admin/keys/{args.key}")
        print(f"revoked {key['id']} ({key['name']})")
    return 0


def _key_row(k: dict[str, Any]) -> list[str]:
    def money(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    return [
        k["id"],
        k["name"],
        k["prefix"] + "...",
        ",".join(k["allowed_models"]) or "any",
        str(k["rpm"] or "-"),
        str(k["tpm"] or "-"),
        money(k["budget_day_usd"]),
        money(k["budget_month_usd"]),
        "revoked" if k["revoked"] else ("on-prem" if k["onprem_only"] else "live"),
    ]


def _usage(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"group_by": args.group_by}
    for name in ("key", "model", "target", "since", "until"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    data = _call(client, "GET", "/admin/usage", params=params)["data"]
    header = (
        args.group_by,
        "requests",
        "prompt tok",
        "completion tok",
        "cloud $",
        "local",
        "saved $",
    )
    rows = []
    for g in data:
        label = g["group"] if g["group"] is not None else "(none)"
        if g.get("name"):
            label = f"{g['name']} ({label})"
        share = "-" if g["local_share"] is None else f"{g['local_share']:.0%}"
        saved = "n/a" if g["saved_usd"] is None else f"{g['saved_usd']:.4f}"
        rows.append(
            [
                label,
                str(g["requests"]),
                str(g["prompt_tokens"]),
                str(g["completion_tokens"]),
                f"{g['cost_usd']:.4f}",
                share,
                saved,
            ]
        )
    _table(header, rows)
    return 0


def _table(header: tuple[str, ...], rows: list[list[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    if not rows:
        print("(nothing yet)")


def _audit(client: httpx.Client, args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        result = _call(client, "GET", "/admin/audit/verify")
        print(json.dumps(result, indent=2) if args.json else format_verification(result))
        return 0 if result["ok"] else 1
    params = {name: getattr(args, name) for name in ("since", "until") if getattr(args, name)}
    report = _call(client, "GET", "/admin/audit/egress", params=params)
    print(json.dumps(report, indent=2) if args.json else format_egress_report(report))
    return 1 if report["onprem_marked"] else 0


def format_egress_report(report: dict[str, Any]) -> str:
    """The report as an auditor reads it; counts only, as recorded."""

    def when(ts: float | None, open_end: str) -> str:
        if ts is None:
            return open_end
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    lines = [
        f"Egress audit from {when(report['since'], 'the first record')} "
        f"until {when(report['until'], 'now')}",
        f"requests that left for a cloud provider  {report['requests']}",
        f"bytes sent (request bodies)              {report['body_bytes']}",
        f"carrying an on-prem mark                 {report['onprem_marked']}"
        + ("   <- BREACH: on-prem requests must never leave" if report["onprem_marked"] else ""),
    ]
    for title, counts in (
        ("by provider kind", report["by_provider_kind"]),
        ("by target", report["by_target"]),
        ("by verdict", report["by_verdict"]),
        ("scanned by detector version", report["detector_versions"]),
        ("findings redacted, by kind (counts; values are never recorded)", report["findings"]),
    ):
        lines.append(f"{title}:")
        width = max((len(name) for name in counts), default=0)
        lines += [f"  {name.ljust(width)}  {count}" for name, count in counts.items()]
        if not counts:
            lines.append("  (none)")
    return "\n".join(lines)


def format_verification(result: dict[str, Any]) -> str:
    head = f"chain head: seq {result['head_seq']}, row_hash {result['head_hash']}"
    if result["ok"]:
        return f"egress audit chain holds: {result['rows_checked']} row(s) verified\n{head}"
    return (
        f"egress audit chain BROKEN at seq {result['first_broken_seq']} "
        f"({result['problem']}): {result['detail']}\n"
        f"{result['rows_checked']} row(s) before it verified\n{head}"
    )
