"""The `jobfleet` command: run a worker, enqueue jobs, read stats, jobs and dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, get_args

from redis.exceptions import RedisError

from . import event_loop, joblog
from .bounds import MIB, PayloadBytes, Processes, check
from .client import CLEARABLE, Client
from .errors import JobfleetError
from .job import JobInfo
from .registry import import_handlers
from .settings import (
    DEFAULT_REDIS_URL,
    LogFormat,
    LogJobs,
    WorkerSettings,
    load_settings,
    redact_text,
    redact_url,
    url_password,
)
from .stats import LIST_STATES, QueueStats
from .supervisor import CHILD_FLAG, PORT_FILE_FLAG, Supervisor, announce, watch_parent

if TYPE_CHECKING:  # the admin server is imported by `jobfleet admin` alone
    from .admin.processes import AdminOptions

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake on the command line, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit itself
        raise UsageError(message)


def _redis_url(args: argparse.Namespace) -> str:
    return str(args.redis_url or os.environ.get("JOBFLEET_REDIS_URL") or DEFAULT_REDIS_URL)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before or after the subcommand; SUPPRESS keeps a subcommand's absent
    # option from overwriting a value given before it.
    parser.add_argument(
        "--redis-url",
        default=None if top else argparse.SUPPRESS,
        help=f"default: $JOBFLEET_REDIS_URL or {DEFAULT_REDIS_URL}",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("JOBFLEET_LOG_LEVEL", "INFO") if top else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--log-format",
        choices=get_args(LogFormat),
        default=None if top else argparse.SUPPRESS,
        help="log lines as text or one JSON object per line (default: $JOBFLEET_LOG_FORMAT, "
        "else the worker settings' log_format, else text)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jobfleet", description="Background jobs on Redis, run by a fleet.")
    _common(p, top=True)
    common = _Parser(add_help=False)
    _common(common, top=False)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    w = sub.add_parser("worker", parents=[common], help="run a worker until SIGTERM/SIGINT")
    w.add_argument("--queue", "-q", help="queue name (default: settings, else 'default')")
    w.add_argument("--handlers", help="comma-separated modules that register handlers")
    w.add_argument("--concurrency", "-c", type=int, help="jobs in flight at once")
    w.add_argument(
        "--processes",
        type=int,
        help="worker processes under one supervisor that serves the health/metrics port "
        "(default 1: this process is the worker)",
    )
    w.add_argument(
        "--partitions",
        type=int,
        help="partitions of the queue, each its own Redis Cluster slot (docs/partitions.md)",
    )
    w.add_argument(
        "--event-loop",
        choices=event_loop.EVENT_LOOPS,
        help="the event loop of the worker and of each of its --processes: asyncio (default) or "
        "uvloop (needs jobfleet[uvloop]; lighter for I/O-bound handlers at low concurrency)",
    )
    # A supervised child (jobfleet.supervisor): its settings come on stdin.
    w.add_argument(CHILD_FLAG, type=int, dest="supervised_by", help=argparse.SUPPRESS)
    w.add_argument(PORT_FILE_FLAG, dest="port_file", help=argparse.SUPPRESS)
    w.add_argument("--config", help="JSON settings file (default: $JOBFLEET_CONFIG)")
    w.add_argument("--http-port", type=int, help="health/metrics port; 0 picks a free one")
    w.add_argument("--mode", choices=["inProcess", "sidecar"])
    w.add_argument("--sidecar-url")
    w.add_argument(
        "--allow-volatile-eviction",
        action="store_true",
        default=None,
        help="run on a volatile-* maxmemory-policy, accepting that Redis may evict dedup keys, "
        "rate-limit windows and circuit-breaker state",
    )
    w.add_argument(
        "--log-jobs",
        choices=get_args(LogJobs),
        help="a log line for every job outcome, for all but completions (the default), or none",
    )
    w.add_argument(
        "--log-payload",
        action="store_true",
        default=None,
        help="put each job's payload in its outcome log line (off by default: payloads may "
        "hold personal data)",
    )

    e = sub.add_parser("enqueue", parents=[common], help="enqueue one job")
    e.add_argument("name")
    e.add_argument("payload", nargs="?", default="null", help="JSON (default: null)")
    e.add_argument("--queue", "-q", default="default")
    e.add_argument("--priority", "-p", default="normal")
    e.add_argument("--delay", type=float, help="seconds")
    e.add_argument("--job-id")
    e.add_argument("--dedup-key")
    e.add_argument("--dedup-ttl", type=float)
    e.add_argument("--max-attempts", type=int)
    e.add_argument("--timeout", type=float)
    e.add_argument("--group", "-g", help="the job's group (a tenant); default: none")
    e.add_argument(
        "--partition-key",
        help="places the job in a partitioned queue: one key, one partition, order kept",
    )

    s = sub.add_parser("stats", parents=[common], help="queue counts, oldest wait and rates")
    s.add_argument("--queue", "-q", help="one queue (default: all known queues)")
    s.add_argument("--json", action="store_true")

    j = sub.add_parser(
        "job",
        parents=[common],
        help="one job: show it (`job ID` or `job show ID`), or remove, retry or cancel it",
    )
    j.add_argument("words", nargs="+", metavar="[show|remove|retry|cancel] ID")
    j.add_argument("--queue", "-q", default="default")
    j.add_argument("--json", action="store_true")
    j.add_argument("--yes", "-y", action="store_true", help="remove or cancel without asking")

    js = sub.add_parser("jobs", parents=[common], help="jobs by state")
    jsub = js.add_subparsers(dest="jobs_command", required=True, parser_class=_Parser)
    jl = jsub.add_parser("list", parents=[common], help="one page of the jobs in a state")
    jl.add_argument("--state", "-s", required=True, choices=LIST_STATES)
    jl.add_argument("--queue", "-q", default="default")
    jl.add_argument("--name", help="only jobs of this handler name")
    jl.add_argument("--error-type", help="only jobs whose last error has this type")
    jl.add_argument("--limit", type=int, default=50, help="1 to 1000 (default 50)")
    jl.add_argument("--cursor", help="the next cursor a previous page printed")
    jl.add_argument("--json", action="store_true")

    qu = sub.add_parser("queue", parents=[common], help="queues: list, clear, obliterate")
    qsub = qu.add_subparsers(dest="queue_command", required=True, parser_class=_Parser)
    ql = qsub.add_parser("list", parents=[common], help="every queue with its counts")
    ql.add_argument("--json", action="store_true")
    qc = qsub.add_parser("clear", parents=[common], help="remove the jobs that wait")
    qc.add_argument(
        "--state",
        action="append",
        choices=CLEARABLE,
        help="waiting, delayed or held; repeat for more (default: all three)",
    )
    qo = qsub.add_parser("obliterate", parents=[common], help="delete every key of a queue")
    qo.add_argument("--force", action="store_true", help="even while jobs are active")
    for qp in (qc, qo):
        qp.add_argument("queue", nargs="?", default=None, help="the queue (or --queue)")
        qp.add_argument("--queue", "-q", dest="queue_opt", default=None)
        qp.add_argument("--yes", "-y", action="store_true", help="do it without asking")
        qp.add_argument("--json", action="store_true")

    for verb, text in (
        ("pause", "workers stop starting jobs; enqueue still works"),
        ("resume", "workers start jobs again"),
    ):
        pr = sub.add_parser(verb, parents=[common], help=text)
        pr.add_argument("--queue", "-q", default="default")

    a = sub.add_parser("admin", parents=[common], help="serve the admin API and dashboard")
    a.add_argument(
        "--tokens", help="tokens file or Secret directory (default: $JOBFLEET_ADMIN_TOKENS)"
    )
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    a.add_argument("--port", type=int, default=8080, help="default: 8080; 0 picks a free one")
    a.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS")
    a.add_argument("--tls-key", help="PEM private key of --tls-cert")
    a.add_argument("--max-body", type=int, default=MIB, help="request body limit, bytes")
    a.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes on the one port (SO_REUSEPORT) under one supervisor "
        "(default 1: this process serves)",
    )
    # A supervised child (jobfleet.admin.processes): its options come on stdin.
    a.add_argument(CHILD_FLAG, type=int, dest="supervised_by", help=argparse.SUPPRESS)
    a.add_argument(PORT_FILE_FLAG, dest="port_file", help=argparse.SUPPRESS)

    d = sub.add_parser("dlq", parents=[common], help="dead letters: list, show, replay, purge")
    dsub = d.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    for name, help_text in (
        ("list", "list dead letters, newest first"),
        ("show", "show one dead letter with its traceback"),
        ("replay", "put dead letters back in line"),
        ("purge", "delete dead letters for good"),
    ):
        c = dsub.add_parser(name, parents=[common], help=help_text)
        c.add_argument("--queue", "-q", default="default")
        if name == "show":
            c.add_argument("id")
        else:
            c.add_argument("ids", nargs="*", help="job ids (default: all matching)")
            c.add_argument("--name", help="only jobs of this handler name")
            c.add_argument("--error-type", help="only jobs whose last error has this type")
        if name == "list":
            c.add_argument("--limit", type=int, default=50)
            c.add_argument("--offset", type=int, default=0)
        if name in ("list", "show"):
            c.add_argument("--json", action="store_true")
        if name == "purge":
            c.add_argument("--yes", action="store_true", help="required to purge everything")
    return p


def _secrets(argv: Sequence[str]) -> list[str | None]:
    """Passwords this command was given: none of them may appear in what it prints."""
    urls = [a for a in argv if "://" in a] + [os.environ.get("JOBFLEET_REDIS_URL") or ""]
    return [url_password(u) for u in urls] + [os.environ.get("JOBFLEET_REDIS_PASSWORD")]


def _error(exc: BaseException, secrets: list[str | None]) -> None:
    print(f"jobfleet: {redact_text(str(exc), *secrets)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    secrets = _secrets(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _error(exc, secrets)
        return EXIT_USAGE
    args.secrets = tuple(s for s in secrets if s)
    joblog.configure(
        getattr(logging, str(args.log_level).upper(), logging.INFO),
        args.log_format or os.environ.get("JOBFLEET_LOG_FORMAT") or "text",
    )
    commands: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "enqueue": _enqueue,
        "stats": _stats,
        "job": _job,
        "jobs": _jobs,
        "queue": _queue,
        "dlq": _dlq,
        "admin": _admin,
        "pause": _pause,
        "resume": _pause,
    }
    try:
        if args.command == "worker":
            # The settings choose the event loop, so they are read before any loop exists.
            settings = _worker_input(args)
            return event_loop.run(lambda: _worker(args, settings), settings.event_loop)
        return asyncio.run(commands[args.command](args))
    except UsageError as exc:
        _error(exc, secrets)
        return EXIT_USAGE
    except JobfleetError as exc:
        _error(exc, secrets)
        return EXIT_ERROR
    except (RedisError, OSError) as exc:
        # redis-py messages name host and port but never the password.
        _error(Exception(f"cannot reach Redis at {redact_url(_redis_url(args))}: {exc}"), secrets)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _worker_input(args: argparse.Namespace) -> WorkerSettings:
    """A supervised child's settings from stdin (its parent's, event loop included); else the
    file, environment and flags."""
    if args.supervised_by is not None:
        watch_parent(args.supervised_by)
        return WorkerSettings.model_validate_json(sys.stdin.read())
    return _worker_settings(args)


async def _worker(args: argparse.Namespace, settings: WorkerSettings) -> int:
    from .sidecar import SidecarHandlers
    from .worker import HandlerSource, run_worker

    joblog.use_format(settings.log_format)  # the settings file may choose it too
    if settings.mode != "sidecar" and not settings.handlers:
        raise UsageError("no handler modules: pass --handlers pkg.module (or JOBFLEET_HANDLERS)")
    if settings.processes > 1:
        return await Supervisor(settings, log_level=str(args.log_level)).run()
    sidecar = None
    handlers: HandlerSource | None = None
    if settings.mode == "sidecar":
        sidecar = handlers = SidecarHandlers(settings.sidecar_url)
    else:
        sys.path.insert(0, os.getcwd())
        import_handlers(settings.handlers)
    on_listening = announce(args.port_file) if args.port_file else None
    try:
        counters = await run_worker(settings, handlers, on_listening=on_listening)
        if counters.abandoned:
            # Threads of sync handlers still run; the interpreter would wait for them at
            # exit (past the grace period). Their jobs were not released: leave now.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)
    finally:
        if sidecar is not None:
            await sidecar.aclose()
    return 0


def _worker_settings(args: argparse.Namespace) -> WorkerSettings:
    """The worker's settings: file, environment, then these flags."""
    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.handlers:
        overrides["handlers"] = [h.strip() for h in args.handlers.split(",") if h.strip()]
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    if args.mode:
        overrides["mode"] = args.mode
    if args.sidecar_url:
        overrides["sidecar_url"] = args.sidecar_url
    if args.allow_volatile_eviction:
        overrides["allow_volatile_eviction"] = True
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.log_payload:
        overrides["log_payload"] = True
    if args.log_jobs:
        overrides["log_jobs"] = args.log_jobs
    if args.processes is not None:
        overrides["processes"] = args.processes
    if args.event_loop:
        overrides["event_loop"] = args.event_loop
    queue: dict[str, Any] = {}
    if args.queue:
        queue["name"] = args.queue
    if args.concurrency is not None:
        queue["concurrency"] = args.concurrency
    if args.partitions is not None:
        queue["partitions"] = args.partitions
    if queue:
        overrides["queue"] = queue
    return load_settings(config_file=args.config, overrides=overrides)


async def _admin(args: argparse.Namespace) -> int:
    from .admin.app import create_app, serve, tls_context
    from .admin.auth import TokenStore
    from .admin.processes import AdminOptions, AdminSupervisor

    if args.supervised_by is not None:
        watch_parent(args.supervised_by)
        options = AdminOptions.from_json(sys.stdin.read())
    else:
        options = _admin_options(args)
    store = TokenStore(options.tokens)  # the first load must succeed: one clear error
    tls = (
        tls_context(options.tls_cert, options.tls_key)
        if options.tls_cert and options.tls_key
        else None
    )
    if args.supervised_by is None and args.processes > 1:
        return await AdminSupervisor(options, args.processes, str(args.log_level)).run()
    started = announce(args.port_file) if args.port_file else None
    async with Client(options.redis_url) as client:
        app = create_app(client, store, max_body=options.max_body, secrets=args.secrets)
        await serve(
            app,
            options.host,
            options.port,
            tls=tls,
            started=started,
            reuse_port=args.supervised_by is not None,
        )
    return 0


def _admin_options(args: argparse.Namespace) -> AdminOptions:
    from .admin.processes import AdminOptions

    tokens = args.tokens or os.environ.get("JOBFLEET_ADMIN_TOKENS")
    if not tokens:
        raise UsageError("no tokens: pass --tokens PATH (or $JOBFLEET_ADMIN_TOKENS)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    check("--max-body", PayloadBytes, args.max_body)
    check("--processes", Processes, args.processes)
    return AdminOptions(
        redis_url=_redis_url(args),
        tokens=str(tokens),
        host=args.host,
        port=args.port,
        max_body=args.max_body,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


async def _enqueue(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise UsageError(f"payload is not valid JSON: {exc}") from None
    async with Client(_redis_url(args), queue=args.queue) as client:
        job_id = await client.enqueue(
            args.name,
            payload,
            priority=args.priority,
            delay=args.delay,
            job_id=args.job_id,
            dedup_key=args.dedup_key,
            dedup_ttl=args.dedup_ttl,
            max_attempts=args.max_attempts,
            timeout=args.timeout,
            group=args.group,
            partition_key=args.partition_key,
        )
    print(job_id)
    return 0


async def _stats(args: argparse.Namespace) -> int:
    async with Client(_redis_url(args)) as client:
        stats = [await client.inspect(queue=args.queue)] if args.queue else await client.queues()
    if args.json:
        print(json.dumps([s.model_dump() for s in stats], indent=2))
        return 0
    if not stats:
        print("no queues yet")
        return 0
    print(_stats_table(stats))
    return 0


def _stats_table(stats: list[QueueStats]) -> str:
    return _table(
        [
            "QUEUE",
            "WAITING",
            "HELD",
            "DELAYED",
            "ACTIVE",
            "DEAD",
            "OLDEST",
            "RATE/s",
            "WORKERS",
            "STATUS",
        ],
        [_stats_row(s) for s in stats],
    )


def _stats_row(s: QueueStats) -> list[str]:
    status = ["paused"] if s.paused else []
    status += [
        f"circuit {'queue' if scope == '*' else scope} {c.state.replace('_', '-')}"
        for scope, c in sorted(s.circuits.items())
        if c.state != "closed"
    ]
    return [
        s.queue,
        str(s.waiting),
        str(s.held),
        str(s.delayed),
        str(s.active),
        str(s.dead),
        f"{s.oldest_wait:.1f}s",
        f"{s.throughput:.1f}",
        str(s.workers),
        ", ".join(status) or "ok",
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


async def _pause(args: argparse.Namespace) -> int:
    async with Client(_redis_url(args), queue=args.queue) as client:
        if args.command == "pause":
            await client.pause()
            print(f"queue {args.queue} paused: in-flight jobs finish, no new ones start")
        else:
            await client.resume()
            print(f"queue {args.queue} resumed")
    return 0


JOB_VERBS = ("show", "remove", "retry", "cancel")


def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask on a terminal; elsewhere (scripts, CI) a destructive command needs --yes."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: add --yes to confirm (no terminal to ask on)")
    answer = input(f"{question}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was changed")


def _done(args: argparse.Namespace, text: str, **fields: Any) -> None:
    print(json.dumps(fields) if args.json else text)


async def _job(args: argparse.Namespace) -> int:
    words = args.words
    if len(words) == 1:
        verb, job_id = "show", words[0]
    elif len(words) == 2 and words[0] in JOB_VERBS:
        verb, job_id = words
    else:
        raise UsageError(f"usage: jobfleet job [{'|'.join(JOB_VERBS)}] ID")
    async with Client(_redis_url(args), queue=args.queue) as client:
        if verb == "show":
            _print_job(await client.get(job_id), as_json=args.json)
        elif verb == "retry":
            await client.retry(job_id)
            _done(args, f"job {job_id} is waiting again", id=job_id, result="retried")
        elif verb == "remove":
            _confirm(args, f"remove job {job_id} of queue {args.queue} for good")
            await client.remove(job_id)
            _done(args, f"job {job_id} removed", id=job_id, result="removed")
        else:
            _confirm(args, f"cancel job {job_id} of queue {args.queue}")
            result = await client.cancel(job_id)
            text = (
                f"job {job_id} cancelled"
                if result == "cancelled"
                else f"job {job_id} cancelled; its worker is stopping the handler"
            )
            _done(args, text, id=job_id, result=result)
    return 0


async def _jobs(args: argparse.Namespace) -> int:
    async with Client(_redis_url(args), queue=args.queue) as client:
        page = await client.jobs(
            args.state,
            name=args.name,
            error_type=args.error_type,
            limit=args.limit,
            cursor=args.cursor,
        )
    if args.json:
        print(page.model_dump_json(indent=2))
        return 0
    if page.jobs:
        rows = [
            [
                j.id,
                j.name,
                j.priority.name.lower(),
                str(j.attempt),
                j.worker_id or "",
                j.error.type if j.error else "",
            ]
            for j in page.jobs
        ]
        print(_table(["ID", "NAME", "PRIORITY", "ATTEMPTS", "WORKER", "ERROR"], rows))
    else:
        print(f"no {args.state} jobs on this page")
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}")
    return 0


async def _queue(args: argparse.Namespace) -> int:
    cmd = args.queue_command
    async with Client(_redis_url(args)) as client:
        if cmd == "list":
            stats = await client.queues()
            if args.json:
                print(json.dumps([s.model_dump() for s in stats], indent=2))
            elif stats:
                print(_stats_table(stats))
            else:
                print("no queues yet")
            return 0
        queue = args.queue or args.queue_opt
        if queue is None:
            raise UsageError(f"queue {cmd}: name the queue (`jobfleet queue {cmd} NAME`)")
        if cmd == "clear":
            states = args.state or list(CLEARABLE)
            _confirm(args, f"remove every {'/'.join(states)} job of queue {queue}")
            n = await client.clear(states=states, queue=queue)
            _done(args, f"removed {n} job{'s' if n != 1 else ''}", queue=queue, count=n)
            return 0
        _confirm(args, f"delete queue {queue} and every job, dead letter and counter in it")
        n = await client.obliterate(force=args.force, queue=queue)
        _done(args, f"queue {queue} obliterated: {n} keys removed", queue=queue, count=n)
        return 0


def _print_job(info: JobInfo, *, as_json: bool) -> None:
    if as_json:
        print(info.model_dump_json(indent=2))
        return
    print(f"id:        {info.id}")
    print(f"name:      {info.name}")
    print(f"queue:     {info.queue}")
    print(f"state:     {info.state.value}")
    print(f"priority:  {info.priority.name.lower()}")
    print(f"attempt:   {info.attempt}" + (f" of {info.max_attempts}" if info.max_attempts else ""))
    if info.progress is not None or info.progress_message:
        print(
            f"progress:  {info.progress or 0:g}% {info.progress_stage or ''} "
            f"{info.progress_message or ''}".rstrip()
        )
    print(f"payload:   {json.dumps(info.payload)}")
    if info.result is not None:
        print(f"result:    {json.dumps(info.result)}")
    if info.dead_reason:
        print(f"dead:      {info.dead_reason}")
    if info.error:
        print(f"error:     {info.error.type}: {info.error.message}")
        if info.error.traceback:
            print(info.error.traceback.rstrip())


async def _dlq(args: argparse.Namespace) -> int:
    async with Client(_redis_url(args), queue=args.queue) as client:
        dlq = client.dlq
        cmd = args.dlq_command
        if cmd == "show":
            _print_job(await dlq.show(args.id), as_json=args.json)
            return 0
        ids = args.ids or None
        if cmd == "list":
            jobs = await dlq.list(
                offset=args.offset, limit=args.limit, name=args.name, error_type=args.error_type
            )
            jobs = [j for j in jobs if ids is None or j.id in ids]
            if args.json:
                print(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
            elif not jobs:
                print("no dead letters")
            else:
                print(
                    _table(
                        ["ID", "NAME", "ATTEMPTS", "ERROR", "REASON"],
                        [
                            [
                                j.id,
                                j.name,
                                str(j.attempt),
                                j.error.type if j.error else "",
                                (j.dead_reason or "")[:60],
                            ]
                            for j in jobs
                        ],
                    )
                )
            return 0
        filters = {"name": args.name, "error_type": args.error_type}
        if cmd == "replay":
            n = await dlq.replay(ids, **filters)
            print(f"replayed {n} dead letter{'s' if n != 1 else ''}")
            return 0
        if ids is None and args.name is None and args.error_type is None and not args.yes:
            raise UsageError("purging every dead letter needs --yes")
        n = await dlq.purge(ids, **filters)
        print(f"purged {n} dead letter{'s' if n != 1 else ''}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
