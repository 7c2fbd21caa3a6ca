"""`mailbot run`, `mailbot once`, `mailbot reprocess`: the intake with the pipeline.

`run` serves until SIGTERM (the current message is finished, exit 0), tells systemd
(Type=notify) when it is ready, beats its watchdog from the intake loop, serves
/healthz and /metrics when `health.listen` is set and the web desk when
`web.in_daemon` is (a port it cannot listen on stops it at the start); `once`
processes what is pending, delivers the outbox and runs the sweeps, then exits.

On PostgreSQL any number of `run` processes (any machines) share the work: one holds
the IMAP intake at a time, all of them decide mail (mailbot.daemon.leader,
mailbot.intake.worker); `worker` only decides mail. On SQLite `run` is the one
process: a second one on the same database refuses to start.
"""

from __future__ import annotations

import argparse
import sys
import threading

from mailbot import metrics
from mailbot.cli.app import App, print_json
from mailbot.cli.run_reload import Reloader
from mailbot.core.errors import ConfigError
from mailbot.daemon import loop
from mailbot.daemon.health import HealthServer
from mailbot.daemon.leader import INTAKE, AdvisoryLock, SingleDaemonLock, is_shared
from mailbot.daemon.scheduler import Jobs
from mailbot.daemon.sdnotify import Notifier, Watchdog
from mailbot.intake.pipeline import Pipeline
from mailbot.intake.sync import reprocess
from mailbot.intake.worker import Worker
from mailbot.outbound.delivery import deliver_pending
from mailbot.services.sweeps import run_sweeps


def _pipeline(app: App) -> Pipeline:
    return Pipeline(app.settings, rules=lambda: app.rules, clock=app.now, factory=app.factory)


def _single_daemon(app: App, command: str) -> SingleDaemonLock | None:
    """On SQLite: the lock that keeps a second daemon off the database (None when
    another one holds it; the message is written)."""
    lock = SingleDaemonLock(app.settings.database_url, app.settings.data_dir)
    try:
        lock.acquire()
    except ConfigError as exc:
        sys.stderr.write(f"mailbot: {command}: {exc}\n")
        return None
    return lock


def _reloader_and_health(
    args: argparse.Namespace, app: App
) -> tuple[Reloader, HealthServer | None]:
    """The SIGHUP reloader, fresh metrics, and /healthz + /metrics when
    `health.listen` is set (the server reports the reloader's status)."""
    reloader = Reloader(app, args.config, log_level_fixed=bool(args.log_level))
    metrics.reset()
    health = None
    if app.settings.health.listen:
        health = HealthServer(
            app.settings.health.listen, app.factory, app.settings, reload=reloader.status
        ).start()
    return reloader, health


def cmd_run(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    shared = is_shared(app.engine)
    single = None if shared else _single_daemon(app, "run")
    if not shared and single is None:
        return 1
    reloader, health = _reloader_and_health(args, app)
    desk = None
    if app.settings.web.in_daemon:  # the web desk in this process (`[web] in_daemon`)
        from mailbot.cli.web import DeskThread

        try:
            desk = DeskThread(app).start()
        except BaseException:  # a taken port: nothing of this process stays behind
            if health is not None:
                health.stop()
            if single is not None:
                single.release()
            raise
    notifier = Notifier()
    watchdog = Watchdog(notifier)
    metrics.add_beat_listener(watchdog)
    jobs = Jobs(app.factory, app.settings, lambda: app.rules, app.now)
    jobs.start()
    pipeline = _pipeline(app)
    stop = threading.Event()
    leader = worker = None
    if shared:
        # this process fetches only while it holds the intake lock, and decides mail
        # (whoever fetched it) in a thread of its own all along
        leader = AdvisoryLock(app.engine, f"{INTAKE}:{app.settings.imap_account}")
        worker = Worker(app.settings, app.factory, pipeline, stop, on_batch=jobs.deliver_soon)
        worker_thread = worker.start_thread()
    try:
        return loop.run(
            app.settings,
            pipeline,
            stop,
            on_idle_tick=jobs.deliver_soon,
            on_batch=jobs.deliver_soon,  # replies go out while a burst is coming in
            factory=app.factory,
            on_reload=reloader,
            on_connected=notifier.ready,
            leader=leader,
        )
    finally:
        stop.set()
        if worker is not None:
            worker_thread.join(timeout=120)  # it finishes the mail it is deciding
        if leader is not None:
            leader.dispose()
        if single is not None:
            single.release()
        notifier.stopping()
        metrics.remove_beat_listener(watchdog)
        pipeline.close()
        jobs.stop()
        if health is not None:
            health.stop()
        if desk is not None:
            desk.stop()


def cmd_worker(args: argparse.Namespace, app: App) -> int:
    if not is_shared(app.engine):
        sys.stderr.write(
            "mailbot: worker: needs PostgreSQL ([database] url = postgresql://...); "
            "on SQLite `mailbot run` is the one process that decides mail\n"
        )
        return 2
    app.ensure_schema()
    reloader, health = _reloader_and_health(args, app)
    notifier = Notifier()
    watchdog = Watchdog(notifier)
    metrics.add_beat_listener(watchdog)
    pipeline = _pipeline(app)
    stop = threading.Event()
    worker = Worker(app.settings, app.factory, pipeline, stop)
    thread = worker.start_thread()
    notifier.ready()
    try:
        return loop.wait_until_stopped(stop, on_reload=reloader)
    finally:
        stop.set()
        thread.join(timeout=120)
        notifier.stopping()
        metrics.remove_beat_listener(watchdog)
        pipeline.close()
        if health is not None:
            health.stop()


def cmd_once(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    pipeline = _pipeline(app)
    try:
        counts = loop.once(app.settings, pipeline, factory=app.factory)
    finally:
        pipeline.close()
    sweeps = run_sweeps(app.factory, app.settings, app.rules, app.now())
    # every due reply, in batches, until nothing is left that can go now
    sent = failed = deferred = held = 0
    while True:
        stats = deliver_pending(app.factory, app.settings, app.now(), limit=200)
        sent, failed = sent + stats.sent, failed + stats.failed
        deferred, held = deferred + stats.deferred, held + stats.held
        if stats.sent + stats.failed == 0 or stats.deferred:
            break
    result = {
        "intake": counts.as_dict(),
        "sweep": {"claims": sweeps.claims, "rmas": sweeps.rmas, "errors": sweeps.errors},
        "delivery": {"sent": sent, "failed": failed, "deferred": deferred, "held": held},
    }
    if args.json:
        print_json(result, app.out)
    else:
        intake = ", ".join(f"{k} {v}" for k, v in result["intake"].items() if v)
        app.out.write(f"intake: {intake or 'nothing new'}\n")
        app.out.write(f"sweep: {sweeps.claims} claims, {sweeps.rmas} RMAs changed\n")
        app.out.write(f"replies: {sent} sent, {deferred} deferred, {held} held, {failed} failed\n")
    return 0


# What `reprocess ID` accepts (ingest.reprocess runs nothing else): a mail that was
# processed, or is a duplicate of one, must never be decided twice.
REPROCESSABLE = ("failed", "pending", "quarantined", "ignored")


def _not_reprocessable(app: App, ids: list[int]) -> list[str]:
    """Why each named ledger row cannot be reprocessed (empty when all can)."""
    from sqlalchemy import select

    from mailbot.store.db import transaction
    from mailbot.store.models import Message

    with transaction(app.factory) as s:
        query = select(Message.id, Message.status).where(Message.id.in_(ids))
        status = {mid: st for mid, st in s.execute(query)}
    problems = []
    for mid in dict.fromkeys(ids):
        if mid not in status:
            problems.append(f"ledger row {mid} does not exist")
        elif status[mid] not in REPROCESSABLE:
            problems.append(f"ledger row {mid} is {status[mid]}")
    return problems


def cmd_reprocess(args: argparse.Namespace, app: App) -> int:
    if not args.failed and not args.ids:
        app.out.write("nothing to do: give --failed or ledger ids\n")
        return 2
    problems = _not_reprocessable(app, args.ids) if args.ids else []
    if problems:
        sys.stderr.write(
            f"mailbot: reprocess: {'; '.join(problems)}. Only rows that are "
            f"{', '.join(REPROCESSABLE)} can be reprocessed (see `mailbot messages list`); "
            "nothing was reprocessed.\n"
        )
        return 1
    counts = reprocess(
        app.factory,
        _pipeline(app),
        failed=args.failed or None,
        message_ids=args.ids,
        raw_store=None,
    )
    if args.json:
        print_json(counts.as_dict(), app.out)
    else:
        app.out.write(
            ", ".join(f"{k} {v}" for k, v in counts.as_dict().items() if v) or "nothing reprocessed"
        )
        app.out.write("\n")
    # a row another process took in the meantime was not reprocessed by us
    return 1 if counts.skipped else 0
