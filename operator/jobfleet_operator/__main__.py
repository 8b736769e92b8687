"""`jobfleet-operator`: run the operator, or print its CRD or RBAC rules."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field

import yaml

ENV_NAMESPACES = "JOBFLEET_NAMESPACES"
ENV_LEADER_ELECTION = "JOBFLEET_LEADER_ELECTION"


@dataclass
class Options:
    namespaces: list[str] = field(default_factory=list)
    all_namespaces: bool = False
    leader_election: bool = True
    lease_name: str = "jobfleet-operator"
    lease_namespace: str | None = None
    identity: str = ""
    verbose: bool = False
    log_format: str = "text"


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def parse(argv: list[str]) -> tuple[str, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="jobfleet-operator",
        description="Reconcile jobfleet Queues into autoscaled worker Deployments.",
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    for p in (parser, run):
        p.add_argument(
            "-n",
            "--namespace",
            action="append",
            default=[],
            help="namespace to watch; repeat or comma-separate for several "
            f"(default: ${ENV_NAMESPACES}, else $POD_NAMESPACE)",
        )
        p.add_argument(
            "-A", "--all-namespaces", action="store_true", help="watch Queues in every namespace"
        )
        p.add_argument(
            "--leader-election",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="elect one acting replica through a Lease (default on; "
            f"${ENV_LEADER_ELECTION}=false for a standalone single replica)",
        )
        p.add_argument("--lease-name", default="jobfleet-operator")
        p.add_argument(
            "--lease-namespace",
            default=None,
            help="default: $POD_NAMESPACE, else the first watched",
        )
        p.add_argument("--identity", default=None, help="default: $POD_NAME, else host-pid")
        p.add_argument("-v", "--verbose", action="store_true")
        p.add_argument(
            "--log-format",
            choices=("text", "json"),
            default=None,
            help="default: $JOBFLEET_LOG_FORMAT, else text",
        )
    crd = sub.add_parser("crd", help="print the Queue CRD (YAML)")
    crd.add_argument("-o", "--output", default="-")
    rbac = sub.add_parser("rbac", help="print the RBAC rules the operator needs (YAML)")
    rbac.add_argument("--namespace", default="jobfleet")
    args = parser.parse_args(argv)
    return args.command or "run", args


def options(args: argparse.Namespace, env: dict[str, str]) -> Options:
    namespaces = [n.strip() for raw in args.namespace for n in raw.split(",") if n.strip()]
    all_namespaces = bool(args.all_namespaces)
    if not namespaces and not all_namespaces:
        raw = env.get(ENV_NAMESPACES, "").strip()
        if raw == "*":
            all_namespaces = True
        elif raw:
            namespaces = [n.strip() for n in raw.split(",") if n.strip()]
        elif env.get("POD_NAMESPACE"):
            namespaces = [env["POD_NAMESPACE"]]
    if namespaces and all_namespaces:
        raise SystemExit("jobfleet-operator: use --namespace or --all-namespaces, not both")
    if not namespaces and not all_namespaces:
        raise SystemExit(
            "jobfleet-operator: no namespace to watch: pass --namespace NAME (repeatable), "
            f"--all-namespaces, or set ${ENV_NAMESPACES}"
        )
    election = args.leader_election
    if election is None:
        election = _truthy(env.get(ENV_LEADER_ELECTION, "true"))
    lease_ns = args.lease_namespace or env.get("POD_NAMESPACE") or (namespaces or [None])[0]
    if election and not lease_ns:
        raise SystemExit(
            "jobfleet-operator: leader election needs --lease-namespace (or $POD_NAMESPACE)"
        )
    log_format = args.log_format or env.get("JOBFLEET_LOG_FORMAT", "text")
    if log_format not in ("text", "json"):
        raise SystemExit(f"jobfleet-operator: log format must be text or json, not {log_format!r}")
    identity = args.identity or env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return Options(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        leader_election=election,
        lease_name=args.lease_name,
        lease_namespace=lease_ns,
        identity=identity,
        verbose=bool(args.verbose),
        log_format=log_format,
    )


async def run(opts: Options) -> int:
    """Serve health and metrics, win the Lease, run kopf until stopped or the Lease is lost."""
    import kopf

    from .handlers import Fleet, build_registry
    from .kube import Kube, KubeConfigError, load_credentials
    from .leader import Elector, LeaseConfig
    from .metrics import Metrics, serve

    log = logging.getLogger("jobfleet_operator")
    try:
        creds = load_credentials()
    except KubeConfigError as exc:
        raise SystemExit(f"jobfleet-operator: {exc}") from None
    kube = Kube(creds)
    metrics = Metrics()
    fleet = Fleet(kube, metrics, opts.identity)
    registry = build_registry(fleet, creds)
    ready_flag: asyncio.Event = asyncio.Event()
    stop_flag: asyncio.Event = asyncio.Event()
    kopf_task: asyncio.Task[None] | None = None

    def alive() -> bool:
        # Standing by for the Lease is healthy; a crashed kopf loop is not.
        return kopf_task is None or not kopf_task.done()

    def ready() -> bool:
        # A standby is ready (it is doing its job: waiting); a leader once kopf is running.
        return kopf_task is None or ready_flag.is_set()

    runner = await serve(metrics, alive=alive, ready=ready)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_flag.set)

    elector = None
    code = 0
    try:
        if opts.leader_election:
            assert opts.lease_namespace is not None
            elector = Elector(
                kube,
                LeaseConfig(
                    namespace=opts.lease_namespace, name=opts.lease_name, identity=opts.identity
                ),
            )
            acquiring = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop_flag.wait())
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not acquiring.done():
                acquiring.cancel()
                return 0
        metrics.leader.set(1)
        where = "all namespaces" if opts.all_namespaces else ", ".join(opts.namespaces)
        log.info("jobfleet operator %s acting on %s", opts.identity, where)
        kopf_task = asyncio.create_task(
            kopf.operator(
                registry=registry,
                clusterwide=opts.all_namespaces,
                namespaces=opts.namespaces,
                standalone=True,  # the Lease, not kopf's peering, decides who acts
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
        waits: set[asyncio.Task[None]] = {kopf_task}
        holding = asyncio.create_task(elector.hold()) if elector else None
        if holding is not None:
            waits.add(holding)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if holding is not None and holding.done() and not kopf_task.done():
            log.error("lost leadership: stopping so that another replica can act")
            code = 1
        stop_flag.set()
        if holding is not None:
            holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kopf_task
        if kopf_task.exception() is not None:
            code = 1
    finally:
        await fleet.stop_all()
        metrics.leader.set(0)
        if elector is not None and code == 0:
            await elector.release()
        await runner.cleanup()
        await kube.aclose()
    return code


def main(argv: list[str] | None = None) -> int:
    command, args = parse(sys.argv[1:] if argv is None else argv)
    if command == "crd":
        from .crd import main as crd_main

        return crd_main(["-o", args.output])
    if command == "rbac":
        from .rbac import manifests

        sys.stdout.write(yaml.safe_dump_all(manifests(args.namespace), sort_keys=False))
        return 0
    opts = options(args, dict(os.environ))
    import kopf

    # kopf's formatter: JSON lines carry the Queue's namespace/name under "object".
    kopf.configure(
        verbose=opts.verbose,
        log_format=kopf.LogFormat.JSON if opts.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    if not opts.verbose:
        # kopf logs every handler success at INFO; keep the operator's own lines readable.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return asyncio.run(run(opts))


if __name__ == "__main__":
    raise SystemExit(main())
