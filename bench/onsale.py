"""On-sale benchmark: the purchase path (hold, then pay) measured three ways. Not a test: run
it by hand.

Closed loop (the default), the throughput measure: N buyers with no think time buy against one
event of 2,000 seats until it is sold out: each holds the best N available seats in a section
and pays with the approved test card, and buys again. By Little's law each request then waits
about N / throughput, so its latencies show queueing, not what one buyer feels. Prints tickets
per second, p50/p95/p99 of hold and checkout, the 5xx count and spots sold more than once.
With ``--waiting-room R`` the event lets in R buyers a minute: each buyer joins the line, sleeps
until its turn, then holds and pays; a purchase ends the turn, so it joins again for the next
order. The line's own figures (joining, time in line, joining to tickets) are printed apart.
A rate above what the server sells cannot keep the purchase path fast.

Open loop (``--rate R``), the latency a buyer feels at a given load: orders arrive at R a second
as a Poisson process for ``--duration`` seconds, each a hold and a checkout, against an event
with a seat for every order. Arrival times are drawn up front and each order runs in a task of
its own, however slow the ones before it (no coordinated omission); an order's time runs from
its scheduled arrival to its checkout's answer. ``--find-max-rate`` steps the rate from
``--rate`` (50 unless given) by ``--rate-step``, up while it passes and down while it fails,
then narrows the gap, and reports the highest rate whose p99 stays under ``--p99-target-ms``
with no 5xx and no failed order; each step has an event of its own.

Burst (``--burst``), a flash crowd meeting a small event: 500 buyers, connected first, released
at once for one general-admission section of 100 places; each tokenizes its card at the
acquirer, holds 1 place and pays (``--card-after-hold``: holds first and tokenizes only once
holding, as the shop's pages ask for the card). Prints the time from release until sold out,
and what the winners and the refused buyers waited (a refused buyer's until its refusal).
The simulated acquirer is served by the same server, a third party's work in real life.

Every mode first warms the server up, unmeasured: two seconds of the open loop at 50 orders/s
on an event of their own, as a server has run before an on-sale opens (its processes' database
connections, prepared statements and plans, users and permissions). The closed loop counts
the spots sold of its own event; a spot sold twice counts on any event.

The last line of every mode is one JSON object, with the machine's load average before and
after (figures taken on a busy machine are not comparable). With no ``--database-url`` and no
DATABASE_URL the database is on an embedded PostgreSQL in var/bench-postgres
(app/local_postgres.py); with either, the bench uses its own database ``bilheteria_bench`` on
that URL's server, dropped and created again each run. The server (app/server.py: 2 processes
x 4 threads) is started on it.

    .venv/bin/python bench/onsale.py                  # closed loop, 200 buyers, 2 per order
    .venv/bin/python bench/onsale.py --buyers 200 --per-order 4 --workers 4
    .venv/bin/python bench/onsale.py --waiting-room 7200
    .venv/bin/python bench/onsale.py --rate 100       # 100 orders/s of 2 tickets for 20 s
    .venv/bin/python bench/onsale.py --find-max-rate
    .venv/bin/python bench/onsale.py --burst
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import time
from typing import Any

from common import (
    AsyncClient,
    StackMeter,
    TierMeter,
    fresh_database,
    percentile,
    start_cluster,
    start_server,
)
from shop import (
    Buyer,
    Tally,
    add_event,
    card_tokens,
    connected_buyers,
    log_in,
    prepare,
    seed,
    sold_twice,
)

DATABASE = "bilheteria_bench"
# The open loop's arrival times are the same on every run at a given rate.
SCHEDULE_SEED = 20260101
WARM_UP_RATE, WARM_UP_SECONDS = 50, 2


def run_closed(base: str, setup: dict, jwts: list[str], per_order: int) -> dict[str, Any]:
    """Every buyer buys, with no think time, until every section refused it. The buyers run on
    one event loop (Buyer): a thread each cost the load generator twice the CPU, on the
    cores the server shares."""
    tally = Tally()
    in_line_s: list[float] = []  # joining to being let in
    to_tickets_s: list[float] = []  # joining to a paid order
    card_tokens = iter(setup["tokens"])

    async def next_token() -> str:
        return next(card_tokens)

    async def wait_turn(buyer: Buyer) -> float:
        """Join the line and sleep until the turn it gives (the hold is the gate: a buyer
        early by a hair is told again how long to wait); returns when joined."""
        joined = time.perf_counter()
        status, answer = await buyer.call("line", f"/api/v1/queue/{setup['event_id']}", None)
        if status != 200:
            raise SystemExit(f"waiting room answered {status}: {answer}")
        if answer["result"]["status"] == "waiting":
            await asyncio.sleep(answer["result"]["wait_ms"] / 1000)
        in_line_s.append(time.perf_counter() - joined)
        return joined

    async def buyer(me: Buyer) -> None:
        sections = random.sample(setup["sections"], len(setup["sections"]))
        joined = await wait_turn(me) if setup["waiting_room"] else 0.0
        while sections and tally.tickets < setup["capacity"]:
            status, answer = await me.buy(setup["event_id"], sections, per_order, next_token)
            if status == 403 and answer.get("error") == "waiting_room":
                if "wait_ms" in answer:  # early
                    await asyncio.sleep(answer["wait_ms"] / 1000)
                else:  # the turn ran out
                    joined = await wait_turn(me)
            elif status == 201 and setup["waiting_room"]:
                to_tickets_s.append(time.perf_counter() - joined)
                joined = await wait_turn(me)  # a purchase ends the turn: in line again
            # The per-customer limit counts holds, not purchases: a buyer keeps buying.

    async def crowd() -> float:
        buyers = await connected_buyers(base, jwts, tally)
        started = time.perf_counter()
        await asyncio.gather(*(buyer(me) for me in buyers))
        for me in buyers:
            me.client.close()
        return started

    started = asyncio.run(crowd())
    return {
        "elapsed_s": time.perf_counter() - started,
        "tally": tally,
        "in_line_s": in_line_s,
        "to_tickets_s": to_tickets_s,
    }


def arrivals(rate: float, duration: float) -> list[float]:
    """Seconds from the start at which orders arrive: a Poisson process of ``rate`` a second."""
    draw = random.Random(SCHEDULE_SEED + int(rate * 1000))
    offsets: list[float] = []
    at = draw.expovariate(rate)
    while at < duration:
        offsets.append(at)
        at += draw.expovariate(rate)
    return offsets


def run_open(
    base: str, setup: dict, jwts: list[str], schedule: list[float], per_order: int
) -> dict[str, Any]:
    """One order per scheduled arrival, each a task of its own on one event loop, started on
    time however slow the ones before it; customers take turns. Connections are reused when one
    is idle and opened when none is."""
    tally = Tally()
    idle: list[AsyncClient] = []
    # (scheduled, started, answered) in perf_counter() seconds, and the order's last status
    orders: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, 0)] * len(schedule)

    async def order(n: int, due: float) -> None:
        started = time.perf_counter()
        client = idle.pop() if idle else AsyncClient(base)
        sections = random.sample(setup["sections"], len(setup["sections"]))

        async def card() -> str:
            return setup["tokens"][n]

        me = Buyer(client, jwts[n % len(jwts)], tally)
        status, _ = await me.buy(setup["event_id"], sections, per_order, card)
        orders[n] = (due, started, time.perf_counter(), status)
        idle.append(client)

    async def arrivals_on_time() -> float:
        start = time.perf_counter() + 0.05
        tasks = []
        for n, offset in enumerate(schedule):
            due = start + offset
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(order(n, due)))
        await asyncio.gather(*tasks)
        for client in idle:
            client.close()
        return start

    start = asyncio.run(arrivals_on_time())
    elapsed = max(answered for _, _, answered, _ in orders) - start
    bought = sum(1 for *_, status in orders if status == 201)
    return {
        "orders": len(schedule),
        "elapsed_s": elapsed,
        "bought": bought,
        "achieved_rate": bought / elapsed,
        "purchase_ms": [(answered - due) * 1000 for due, _, answered, _ in orders],
        "lag_ms": [(started - due) * 1000 for due, started, _, _ in orders],
        "tally": tally,
    }


def open_loop_step(
    base: str, app: Any, jwts: list[str], args: argparse.Namespace, rate: float, duration: float
) -> dict[str, Any]:
    """An event with a seat for every order of the schedule, then the open loop at ``rate``."""
    schedule = arrivals(rate, duration)
    # A quarter more seats than orders: buyers pick sections at random, and an order that finds
    # its section full tries another, which would lengthen the last orders.
    wanted = len(schedule) * args.per_order * 5 // 4
    seats = math.ceil(wanted / (args.sections * args.rows))
    setup = add_event(app, args.sections, rows=args.rows, seats=seats)
    setup["tokens"] = card_tokens(app, len(schedule))
    result = run_open(base, setup, jwts, schedule, args.per_order)
    result["rate"] = rate
    return result


def burst(
    base: str,
    app: Any,
    jwts: list[str],
    places: int,
    card_after_hold: bool,
    meter: StackMeter | None = None,
) -> dict[str, Any]:
    """Every buyer connects, then all are released at once: each tokenizes, holds 1 place and
    pays (or, with ``card_after_hold``, tokenizes only once holding, as the shop's pages ask for
    the card). The crowd runs on one event loop in this process (a thread each cost the load
    generator more CPU than the database, on the cores the server shares). ``meter``: the CPU
    each part spends from the release to the last answer."""
    setup = add_event(app, 1, places=places)
    tally = Tally()
    # (status of the purchase, seconds from release to its answer, to its hold, to its first
    # request)
    outcomes: list[tuple[int, float, float, float]] = [(0, 0.0, 0.0, 0.0)] * len(jwts)
    at_release: list[dict[str, float]] = []

    async def buyer(n: int, me: Buyer, released: float) -> None:
        sent = time.perf_counter()
        if card_after_hold:

            async def card() -> str:
                return (await me.tokenize())[1]

            status, _ = await me.buy(setup["event_id"], list(setup["sections"]), 1, card)
        else:
            status, token = await me.tokenize()
            if status == 201:

                async def card() -> str:
                    return token

                status, _ = await me.buy(setup["event_id"], list(setup["sections"]), 1, card)
        outcomes[n] = (
            status,
            time.perf_counter() - released,
            me.held_at - released if me.held_at else 0.0,
            sent - released,
        )

    async def crowd() -> None:
        buyers = await connected_buyers(base, jwts, tally)
        if meter is not None:
            at_release.append(meter.snapshot())
        released = time.perf_counter()
        await asyncio.gather(*(buyer(n, me, released) for n, me in enumerate(buyers)))
        for me in buyers:
            me.client.close()

    asyncio.run(crowd())
    cpu = StackMeter.spent(at_release[0], meter.snapshot()) if meter is not None else None
    won = [at for status, at, _, _ in outcomes if status == 201]
    return {
        "cpu": cpu,
        "capacity": setup["capacity"],
        "steps": "hold, tokenize, checkout" if card_after_hold else "tokenize, hold, checkout",
        "tally": tally,
        "sold_out_s": max(won) if tally.tickets >= setup["capacity"] else None,
        "all_held_s": max(held for *_, held, _ in outcomes) if won else None,
        "won_ms": [at * 1000 for at in won],
        "refused_ms": [at * 1000 for status, at, _, _ in outcomes if status == 409],
        "other": sum(1 for status, *_ in outcomes if status not in (201, 409)),
        "lag_ms": [sent * 1000 for *_, sent in outcomes],
    }


def spread(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name:10s} n={len(values):5d} p50={percentile(values, 50):7.1f} {unit} "
        f"p95={percentile(values, 95):7.1f} {unit} p99={percentile(values, 99):7.1f} {unit} "
        f"max={max(values, default=0):7.1f} {unit}"
    )


def report_closed(
    args: argparse.Namespace, setup: dict, result: dict, twice: int
) -> dict[str, Any]:
    tally = result["tally"]
    tickets_per_s = tally.tickets / result["elapsed_s"]
    print(f"closed loop: capacity {setup['capacity']} seats, {args.buyers} buyers, "
          f"{args.per_order} per order, waiting room "
          f"{f'{args.waiting_room} buyers/min' if args.waiting_room else 'none'}")  # fmt: skip
    print(f"sold {tally.tickets} tickets ({result['sold_spots']} spots sold) in "
          f"{result['elapsed_s']:.2f} s: {tickets_per_s:.0f} tickets/s")  # fmt: skip
    for name in ("hold", "checkout"):
        values = tally.ms[name]
        print(f"{spread(name, values)} mean={statistics.fmean(values) if values else 0:6.1f} ms")
    if args.waiting_room:
        print(spread("line", tally.ms["line"]) + " (joining)")
        print(spread("in line", result["in_line_s"], "s") + " (joining to being let in)")
        print(spread("to tickets", result["to_tickets_s"], "s") + " (joining to a paid order)")
    print(f"status codes {dict(sorted(tally.codes.items()))}; 5xx: {tally.errors_5xx}; "
          f"spots sold more than once: {twice}")  # fmt: skip
    return {
        "mode": "closed",
        "tickets_per_s": round(tickets_per_s, 1),
        "p99_ms": round(percentile(tally.ms["hold"] + tally.ms["checkout"], 99), 1),
        "hold_p99_ms": round(percentile(tally.ms["hold"], 99), 1),
        "checkout_p99_ms": round(percentile(tally.ms["checkout"], 99), 1),
        "waiting_room_per_minute": args.waiting_room or None,
        "line_p99_ms": round(percentile(tally.ms["line"], 99), 1) if args.waiting_room else None,
        "to_tickets_p99_s": (
            round(percentile(result["to_tickets_s"], 99), 2) if args.waiting_room else None
        ),
        "errors_5xx": tally.errors_5xx,
        "oversold": twice,
        "tickets": tally.tickets,
        "capacity": setup["capacity"],
    }


def open_figures(result: dict) -> dict[str, Any]:
    tally = result["tally"]
    return {
        "rate": result["rate"],
        "achieved_rate": round(result["achieved_rate"], 1),
        "tickets_per_s": round(tally.tickets / result["elapsed_s"], 1),
        "p50_ms": round(percentile(result["purchase_ms"], 50), 1),
        "p95_ms": round(percentile(result["purchase_ms"], 95), 1),
        "p99_ms": round(percentile(result["purchase_ms"], 99), 1),
        "orders": result["orders"],
        "failed_orders": result["orders"] - result["bought"],
        "errors_5xx": tally.errors_5xx,
    }


def print_open(result: dict, per_order: int) -> dict[str, Any]:
    tally, figures = result["tally"], open_figures(result)
    print(f"open loop: {result['rate']:g} orders/s of {per_order} (Poisson), {result['orders']} "
          f"orders in {result['elapsed_s']:.1f} s; achieved {figures['achieved_rate']} orders/s, "
          f"{figures['tickets_per_s']} tickets/s, {figures['failed_orders']} failed")  # fmt: skip
    print(spread("purchase", result["purchase_ms"]) + " (scheduled arrival to tickets)")
    print(spread("hold", tally.ms["hold"]))
    print(spread("checkout", tally.ms["checkout"]))
    print(spread("late start", result["lag_ms"]) + " (the load generator's own delay)")
    print(f"status codes {dict(sorted(tally.codes.items()))}; 5xx: {tally.errors_5xx}")
    return figures


def passes(figures: dict, target_ms: float) -> bool:
    return (
        figures["p99_ms"] < target_ms
        and figures["errors_5xx"] == 0
        and figures["failed_orders"] == 0
    )


def find_max_rate(
    base: str, app: Any, jwts: list[str], args: argparse.Namespace
) -> tuple[dict | None, list[dict]]:
    """The highest rate whose p99 meets the target: steps up from ``--rate`` by ``--rate-step``
    while steps pass (down while they fail, halving below one step), then halves the gap
    between the last rate that passed and the first that failed until it is under a quarter
    step (at least 1 order/s). Returns (the best step that passed, every step)."""
    steps: list[dict] = []
    passed: dict[float, dict] = {}

    def trial(rate: float) -> bool:
        figures = print_open(open_loop_step(base, app, jwts, args, rate, args.duration),
                             args.per_order)  # fmt: skip
        steps.append(figures)
        ok = passes(figures, args.p99_target_ms)
        if ok:
            passed[rate] = figures
        print(f"-> {rate:g} orders/s {'passes' if ok else 'fails'} (p99 < "
              f"{args.p99_target_ms:g} ms, no 5xx, no failed order)\n", flush=True)  # fmt: skip
        time.sleep(1)  # let the step's stragglers settle
        return ok

    step = args.rate_step
    low = high = args.rate or 50
    if trial(low):
        while trial(high := low + step):
            low = high
    else:
        while not passed:
            high = low
            low = low - step if low - step >= 1 else round(low / 2, 1)
            if low < 1:
                return None, steps  # not even 1 order/s
            trial(low)
    while high - low > max(1.0, step / 4):
        middle = round((low + high) / 2, 1)
        if trial(middle):
            low = middle
        else:
            high = middle
    return passed[low], steps


def report_burst(result: dict, buyers: int, twice: int) -> dict[str, Any]:
    tally = result["tally"]
    sold_out = result["sold_out_s"]
    print(f"burst: {buyers} buyers released at once for {result['capacity']} places, 1 each "
          f"({result['steps']})")  # fmt: skip
    print(f"sold {tally.tickets} tickets; every place held after "
          f"{result['all_held_s'] or 0:.2f} s, sold out after "
          f"{f'{sold_out:.2f} s' if sold_out else 'never'}")  # fmt: skip
    print(spread("winners", result["won_ms"]) + " (release to tickets)")
    print(spread("refused", result["refused_ms"]) + " (release to the refusal)")
    for name in ("tokenize", "hold", "checkout"):
        print(spread(name, tally.ms[name]))
    print(spread("late start", result["lag_ms"]) + " (release to the first request sent)")
    print(f"status codes {dict(sorted(tally.codes.items()))}; 5xx: {tally.errors_5xx}; "
          f"buyers neither served nor refused: {result['other']}; "
          f"spots sold more than once: {twice}")  # fmt: skip
    return {
        "mode": "burst",
        "steps": result["steps"],
        "buyers": buyers,
        "places": result["capacity"],
        "sold_out_s": round(sold_out, 3) if sold_out else None,
        "all_held_s": round(result["all_held_s"], 3) if result["all_held_s"] else None,
        "tickets_per_s": round(tally.tickets / sold_out, 1) if sold_out else 0,
        "rejected_p50_ms": round(percentile(result["refused_ms"], 50), 1),
        "rejected_p99_ms": round(percentile(result["refused_ms"], 99), 1),
        "winners_p50_ms": round(percentile(result["won_ms"], 50), 1),
        "winners_p99_ms": round(percentile(result["won_ms"], 99), 1),
        "tickets": tally.tickets,
        "errors_5xx": tally.errors_5xx,
        "oversold": twice,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL") or None,
        help="a PostgreSQL server to use (default DATABASE_URL, else an embedded one)",
    )  # fmt: skip
    parser.add_argument("--buyers", type=int, default=200, help="customers (closed, open loop)")
    parser.add_argument("--per-order", type=int, default=2)
    parser.add_argument("--sections", type=int, default=4)
    parser.add_argument(
        "--rows", type=int, default=20, choices=range(1, 27), metavar="1..26",
        help="rows A.. per section (lettered rows: at most 26)",
    )  # fmt: skip
    parser.add_argument("--seats", type=int, default=25, help="per row (closed loop)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--waiting-room", type=int, default=0, metavar="PER_MINUTE",
        help="closed loop: give the event a waiting room letting in this many buyers per minute",
    )  # fmt: skip
    parser.add_argument("--url", help="target a running server (on the database prepared here)")
    parser.add_argument(
        "--cluster", type=int, metavar="NODES",
        help="start ops/cluster.py's topology with NODES web nodes of --workers x --threads "
        "(HAProxy, PgBouncer, its own PostgreSQL, Redis, Celery) and buy through the balancer; "
        "prints the CPU per ticket of each tier",
    )  # fmt: skip
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, help="open loop: orders arriving per second")
    mode.add_argument("--burst", action="store_true", help="a flash crowd for a small event")
    parser.add_argument("--find-max-rate", action="store_true",
                        help="open loop: the highest rate meeting --p99-target-ms, from --rate (50)")  # fmt: skip
    parser.add_argument("--rate-step", type=float, default=25)
    parser.add_argument("--p99-target-ms", type=float, default=500)
    parser.add_argument("--duration", type=float, default=20, help="open loop, per rate (s)")
    parser.add_argument("--burst-buyers", type=int, default=500)
    parser.add_argument("--burst-places", type=int, default=100)
    parser.add_argument(
        "--card-after-hold", action="store_true",
        help="burst: tokenize only once holding, as the shop's pages do",
    )  # fmt: skip
    args = parser.parse_args()
    if args.burst and args.find_max_rate:
        parser.error("--burst and --find-max-rate are different modes")

    cluster = None
    if args.cluster:
        cluster = start_cluster(args.cluster, args.workers, args.threads, {})
        database_url = cluster.direct_database_url
    else:
        database_url = fresh_database(args.database_url, DATABASE)
    closed = not (args.rate or args.find_max_rate or args.burst)
    customers = args.burst_buyers if args.burst else args.buyers
    if closed:
        setup = prepare(database_url, customers, args.rows, args.seats, args.sections,
                        args.waiting_room)  # fmt: skip
        setup["waiting_room"] = args.waiting_room
        app = setup["app"]
    else:
        app, emails = seed(database_url, customers)
    server = None
    base = args.url
    if cluster is not None:
        base = cluster.url
        print(f"cluster: {args.cluster} web node(s) of {args.workers} processes x {args.threads} "
              f"threads behind HAProxy, PgBouncer, its own PostgreSQL", flush=True)  # fmt: skip
    elif base is None:
        server = start_server({"DATABASE_URL": database_url}, args.port, args.workers, args.threads)
        base = f"http://127.0.0.1:{args.port}"
    if cluster is None:
        print(f"server {args.workers} processes x {args.threads} threads; database "
              f"{'embedded' if args.database_url is None else 'at the given URL'}", flush=True)  # fmt: skip
    meter = TierMeter(cluster) if cluster is not None else None
    stack = StackMeter(server.pid) if server is not None else None
    try:
        jwts = log_in(base, setup["emails"] if closed else emails)
        # Not measured, in every mode: each server process's first purchases, on an event of
        # their own (the caches a running server has: database connections and their prepared
        # statements and plans, users and permissions).
        open_loop_step(base, app, jwts, args, WARM_UP_RATE, WARM_UP_SECONDS)
        cpu, wall = time.process_time(), time.perf_counter()
        load_before = os.getloadavg()[0]
        tiers_before = meter.snapshot() if meter is not None else None
        stack_before = stack.snapshot() if stack is not None else None
        measured_event = setup["event_id"] if closed else None
        sold_before = sold_twice(database_url, measured_event)[1] if meter is not None else 0
        if closed:
            result = run_closed(base, setup, jwts, args.per_order)
        elif args.burst:
            result = burst(base, app, jwts, args.burst_places, args.card_after_hold, stack)
        elif args.find_max_rate:
            best, steps = find_max_rate(base, app, jwts, args)
        else:
            figures = print_open(
                open_loop_step(base, app, jwts, args, args.rate, args.duration), args.per_order
            )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        tiers_after = meter.snapshot() if meter is not None else None
        stack_used = StackMeter.spent(stack_before, stack.snapshot()) if stack else None
        if args.burst:
            stack_used = result["cpu"]  # from the release on, not the event's setup
        print(
            f"load generator (this process): {cpu:.1f} s of CPU in {wall:.1f} s, seeding included"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    twice, sold_spots = sold_twice(database_url, measured_event)
    if cluster is not None:
        tickets = sold_spots - sold_before  # in the measured run (not a warm-up's)
        cpu_per_ticket = TierMeter.per_unit(tiers_before, tiers_after, tickets)
        print(f"CPU per ticket sold (ms), by tier, over {tickets} tickets: {cpu_per_ticket}")
        cluster.stop()
    if closed:
        result["sold_spots"] = sold_spots
        summary = report_closed(args, setup, result, twice)
    elif args.burst:
        summary = report_burst(result, customers, twice)
    elif args.find_max_rate:
        summary = {
            "mode": "find-max-rate",
            "max_rate": best["rate"] if best else None,
            **(best or {"rate": None, "p99_ms": None, "tickets_per_s": 0}),
            "errors_5xx": sum(step["errors_5xx"] for step in steps),
            "oversold": twice,
            "p99_target_ms": args.p99_target_ms,
            "steps": [{key: step[key] for key in ("rate", "p99_ms", "achieved_rate")}
                      for step in steps],
        }  # fmt: skip
    else:
        print(f"spots sold more than once: {twice}")
        summary = {"mode": "open", **figures, "oversold": twice}
    if stack_used is not None:
        print(StackMeter.line(stack_used))
        summary["cpu_s"] = stack_used
    if cluster is not None:
        summary["cluster_nodes"] = args.cluster
        summary["cpu_ms_per_ticket"] = cpu_per_ticket
    # The machine may be shared: figures taken under load are not comparable.
    summary["load_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"load average (1 min) {summary['load_1m'][0]} before, {summary['load_1m'][1]} after")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
