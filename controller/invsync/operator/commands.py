"""The `run`, `sync` and `status` verbs: argument parsing and what each does against the cluster."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import InputError
from ..providers import RetryPolicy
from .conditions import find, rfc3339
from .runtime import Shard
from .sharding import StatefulSetRef
from .state import REQUESTED_AT


def add_commands(sub: Any) -> None:
    """Add `run`, `sync` and `status` to an argparse subparsers object."""
    run = sub.add_parser("run", help="run the operator (kubeconfig or in-cluster config)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        help="watch this namespace (repeatable)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--metrics-port", type=int, default=8080, help="/metrics, /healthz, /readyz")
    run.add_argument("--webhook-port", type=int, default=8081, help="POST /webhooks/{namespace}/{source}")
    sharding = run.add_mutually_exclusive_group()
    sharding.add_argument(
        "--statefulset",
        metavar="NAMESPACE/NAME",
        help="shards from the cluster: as many as the StatefulSet's replicas, peers from its pods, "
        "each rule claimed by a Lease in NAMESPACE (docs/operations.md, Sharding)",
    )
    sharding.add_argument(
        "--shard", default="0/1", help="manual: I/N, take the rules whose stable hash mod N is I"
    )
    run.add_argument(
        "--replica",
        default=os.environ.get("POD_NAME", ""),
        metavar="POD_NAME",
        help="with --statefulset: this replica's pod name, NAME-ORDINAL (default: $POD_NAME)",
    )
    run.add_argument(
        "--peers",
        default="",
        metavar="URL,...",
        help="with --shard: every shard's webhook base URL in shard order (deliveries are relayed)",
    )
    run.add_argument(
        "--platform-timeout",
        type=float,
        default=RetryPolicy().timeout,
        metavar="SECONDS",
        help="give up on one platform or source request after this long (then retry); default 30",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=cmd_run)

    sync = sub.add_parser("sync", help="ask the operator to sync a SyncRule now")
    sync.add_argument("rule")
    sync.add_argument("-n", "--namespace", default=None)
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="print the SyncRules' sync summary")
    status.add_argument("rule", nargs="?")
    status.add_argument("-n", "--namespace", default=None)
    status.set_defaults(func=cmd_status)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not args.platform_timeout > 0:
        raise InputError(f"--platform-timeout {args.platform_timeout:g}: must be > 0")
    peers = [p for p in args.peers.split(",") if p]
    statefulset = None
    if args.statefulset is not None:
        if peers:
            raise InputError("--peers is for --shard: with --statefulset the peers come from the cluster")
        statefulset = StatefulSetRef.parse(args.statefulset, args.replica)
    if peers and len(peers) != shard.count:
        raise InputError(f"--peers names {len(peers)} URLs; --shard {args.shard} needs {shard.count}")
    if args.metrics_port == args.webhook_port:
        raise InputError("--metrics-port and --webhook-port must differ")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # -v is for invsync's own lines only: kopf's debug output would include watched Secrets' bodies.
    logging.getLogger("invsync").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for noisy in ("kubernetes", "urllib3", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _operate(
                args.namespaces,
                args.all_namespaces or not args.namespaces,
                shard,
                args.metrics_port,
                args.webhook_port,
                RetryPolicy(timeout=args.platform_timeout),
                [url for i, url in enumerate(peers) if i != shard.index],
                statefulset,
            )
        )
    return 0


async def _operate(
    namespaces: Sequence[str],
    clusterwide: bool,
    shard: Shard,
    metrics_port: int,
    webhook_port: int,
    retry: RetryPolicy,
    peers: Sequence[str],
    statefulset: StatefulSetRef | None,
) -> None:
    import kopf

    from ..providers import Connections
    from .handlers import register
    from .http import Reachability, metrics_app, serve, webhook_app
    from .kube import Kube, KubePorts, load_config
    from .runtime import Operator
    from .sharding import ShardCoordinator

    api = load_config()
    op = Operator(Kube(api), shard)
    connections = Connections()
    op.ports = KubePorts(op.kube, op.read_secret, retry, connections)
    coordinator = ShardCoordinator(api, statefulset) if statefulset is not None else None
    if coordinator is not None:
        op.coordinator, op.shard = coordinator, coordinator.shard  # owns nothing until the first look
    registry = kopf.OperatorRegistry()
    register(registry, op)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.level = logging.WARNING  # kopf's own log lines never become Events
        settings.watching.server_timeout = 300
        op.start()
        if coordinator is not None:
            coordinator.start(op, on_shard=lambda found: setattr(op, "shard", found))
        op.started = True

    servers = await serve(
        {
            webhook_port: webhook_app(op, (lambda: coordinator.peers) if coordinator else lambda: peers),
            metrics_port: metrics_app(lambda: op.started, Reachability(op.kube.reachable), op.shard_view),
        }
    )
    logging.getLogger("invsync.operator").info(
        "metrics on :%d/metrics, webhooks on :%d/webhooks/{namespace}/{source}, %s",
        metrics_port,
        webhook_port,
        f"shards from StatefulSet {statefulset.namespace}/{statefulset.name} as {statefulset.replica}"
        if statefulset is not None
        else f"shard {shard.index}/{shard.count}",
    )
    try:
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=clusterwide,
            namespaces=[] if clusterwide else list(namespaces),
        )
    finally:
        await servers.stop()
        await connections.aclose()


def _namespace(explicit: str | None) -> str:
    if explicit:
        return explicit
    import kubernetes

    try:
        _, context = kubernetes.config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
        return str(context.get("context", {}).get("namespace") or "default")
    except (kubernetes.config.ConfigException, TypeError):
        return "default"


def cmd_sync(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from .kube import Kube, load_config

    kube = Kube(load_config())
    ns = _namespace(args.namespace)
    stamp = rfc3339(datetime.now(UTC))
    try:
        kube.annotate("SyncRule", ns, args.rule, {REQUESTED_AT: stamp})
    except ApiException as exc:
        if exc.status == 404:
            raise InputError(f"SyncRule {ns}/{args.rule} not found") from None
        raise InputError(f"SyncRule {ns}/{args.rule}: {exc.reason}") from None
    print(f"syncrule {ns}/{args.rule}: sync requested at {stamp}")
    return 0


COLUMNS = (
    "NAME",
    "READY",
    "REASON",
    "LISTINGS",
    "IN-SYNC",
    "DRIFTED",
    "PUSHED",
    "FAILED",
    "UNMATCHED",
    "HELD",
    "CONFLICTED",
    "LAST-SYNC",
)


def status_rows(rules: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for rule in rules:
        status = rule.get("status") or {}
        ready = find(status.get("conditions"), "Ready") or {}
        s = status.get("summary") or {}
        rows.append(
            (
                rule["metadata"]["name"],
                str(ready.get("status", "Unknown")),
                str(ready.get("reason", "")),
                *(
                    str(s.get(k, 0))
                    for k in (
                        "listings",
                        "inSync",
                        "drifted",
                        "pushed",
                        "failed",
                        "unmatched",
                        "held",
                        "conflicted",
                    )
                ),
                str(status.get("lastSyncTime") or "-"),
            )
        )
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)


def cmd_status(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from .kube import Kube, load_config

    kube = Kube(load_config())
    ns = _namespace(args.namespace)
    try:
        rules = [kube.get("SyncRule", ns, args.rule)] if args.rule else kube.list("SyncRule", ns)
    except ApiException as exc:
        if exc.status == 404:
            raise InputError(f"SyncRule {ns}/{args.rule} not found") from None
        raise InputError(f"listing SyncRules in {ns}: {exc.reason}") from None
    if not rules:
        print(f"no SyncRules in namespace {ns}")
        return 0
    print(format_table(status_rows(rules)))
    for rule in rules:
        ready = find((rule.get("status") or {}).get("conditions"), "Ready")
        if ready is not None and ready.get("status") != "True":
            print(f"{rule['metadata']['name']}: {ready.get('message', '')}")
    return 0
