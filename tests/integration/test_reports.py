"""Reports written by a task and downloaded as CSV or XLSX: sales per event, a partner's statement
for a period, platform revenue and the payout batch file, each agreeing with the ledger to the
cent; a partner requests and reads only its own sales and statements."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from flask import current_app
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.extensions import db
from app.models import NotFound, PartnerUser, Payout, Report, ReportStatus
from app.models.base import utcnow
from app.services import ledger, payouts, reports
from app.services.reports.files import currency_format
from app.tasks import celery
from tests.support.builders import login, make_event, make_partner, make_user
from tests.support.money import (
    balance,
    cents,
    create_payouts,
    happened_days_ago,
    parse,
    posted_days_ago,
    reconcile,
    records,
    refund,
)
from tests.support.shop import buy, payment_of

pytestmark = pytest.mark.usefixtures("acquirer_fees")


@pytest.fixture(autouse=True)
def reports_dir(app, tmp_path):
    saved = app.config["REPORTS_DIR"]
    app.config["REPORTS_DIR"] = str(tmp_path / "reports")
    yield tmp_path / "reports"
    app.config["REPORTS_DIR"] = saved


pytestmark = pytest.mark.usefixtures("tasks_in_process")  # reports are written at once


@pytest.fixture
def books(client, on_sale):
    """Two days ago: Aurora sells four seats three times over (one order refunded, one charged
    back), Bossa once; the day is settled. Today: Aurora's payout is paid, Bossa's approved, and
    Aurora sells once more (not settled yet)."""
    aurora = on_sale.partner
    bossa = make_partner("Bossa")
    bossa_event = make_event(bossa, '=HYPERLINK("http://x")')  # a name a spreadsheet would run
    bossa_event.publish()
    db.session.commit()
    kept, refunded, disputed = (payment_of(buy(client, on_sale)) for _ in range(3))
    bossa_sale = payment_of(buy(client, bossa_event))
    refund(refunded)
    assert sim_acquirer.chargeback(disputed.gateway_ref, "fraudulent") is not None
    day = happened_days_ago(2)
    reconcile(day)
    posted_days_ago(2)
    fiona = make_user("fiona", "Finance")
    alice = make_user("alice", "Partner", aurora)
    bob = make_user("bob", "Partner", bossa)
    ours, theirs = sorted(create_payouts())
    for payout_id in (ours, theirs):
        payouts.approve_payout(db.session, payout_id, fiona, utcnow())
    payouts.mark_payout_paid(db.session, ours, "TED 2026-1", fiona, utcnow())
    new = payment_of(buy(client, on_sale))
    return {
        "aurora": aurora, "bossa": bossa, "event": on_sale, "bossa_event": bossa_event,
        "fiona": fiona, "alice": alice, "bob": bob, "day": day, "paid": ours, "approved": theirs,
        "payments": [kept, refunded, disputed, new], "bossa_sale": bossa_sale,
    }  # fmt: skip


def run(actor, kind: str, file_format: str = "csv", **params) -> Report:
    report = reports.request_report(db.session, actor, kind, file_format, now=utcnow(), **params)
    assert report.status == ReportStatus.DONE, report.error
    return report


def read(report: Report) -> list[list[str]]:
    """The file's rows as text, header first, whatever its format."""
    path = reports.report_file(report, Path(current_app.config["REPORTS_DIR"]))
    return parse(path.read_bytes(), report.format)


def only(lines: list[dict[str, str]], **match: str) -> dict[str, str]:
    [found] = [line for line in lines if all(line[k] == v for k, v in match.items())]
    return found


def statement(partner) -> dict:
    [found] = ledger.partner_statements(db.session, [partner.id])
    return found


def test_sales_per_event_agree_with_the_ledger(books):
    aurora, bossa = books["aurora"], books["bossa"]
    both = run(books["fiona"], "sales_by_event")
    lines = records(read(both))
    assert both.row_count == len(lines) == 4 + 1 + 1 + 1 + 1  # orders, event totals, total
    for partner, event in ((aurora, books["event"]), (bossa, books["bossa_event"])):
        total = only(lines, line="event total", event_id=str(event.id))
        book = statement(partner)
        assert cents(total["gross"]) == book["sales"]
        assert cents(total["fees"]) == book["fees"] - book["fees_returned"]
        assert cents(total["refunds"]) == book["refunds"]
        assert cents(total["chargebacks"]) == book["chargebacks"]
        # Net is what the sales left the partner: its balance plus what it was paid out.
        assert cents(total["net"]) == book["balance"] + book["payouts"]
        orders = [x for x in lines if x["line"] == "order" and x["event_id"] == str(event.id)]
        for key in ("gross", "fees", "refunds", "chargebacks", "net"):
            assert sum(cents(x[key]) for x in orders) == cents(total[key])
    aurora_total = only(lines, line="event total", event_id=str(books["event"].id))
    assert (aurora_total["tickets"], aurora_total["tickets_refunded"]) == ("8", "4")
    assert [cents(aurora_total[k]) for k in ("gross", "fees", "refunds", "chargebacks", "net")] == [
        80000, 4400, 20000, 20000, 35600,
    ]  # fmt: skip
    refunded = only(lines, line="order", order_id=str(books["payments"][1].order_id))
    assert (refunded["tickets"], refunded["refunds"], refunded["net"]) == ("2", "200.00", "0.00")
    grand = only(lines, line="total", currency="BRL")
    assert cents(grand["net"]) == sum(
        statement(p)["balance"] + statement(p)["payouts"] for p in (aurora, bossa)
    )
    # A partner's own report has its own events only; naming another partner finds nothing.
    own = records(read(run(books["alice"], "sales_by_event")))
    assert {x["partner"] for x in own} - {""} == {"Aurora"}
    assert only(own, line="total")["net"] == aurora_total["net"]
    with pytest.raises(NotFound):
        run(books["alice"], "sales_by_event", partner_id=bossa.id)


def test_a_sales_period_counts_what_the_ledger_posted_in_it(books):
    today = utcnow().date()
    lines = records(read(run(books["fiona"], "sales_by_event", start=today, end=today)))
    # Today only Aurora's last sale was posted.
    assert [x["order_id"] for x in lines if x["line"] == "order"] == [
        str(books["payments"][3].order_id)
    ]
    total = only(lines, line="total")
    assert (total["tickets"], total["gross"], total["net"]) == ("2", "200.00", "178.00")


def test_the_statement_opens_and_closes_on_the_ledgers_balances(books):
    aurora, today = books["aurora"], utcnow().date()
    since = dt.datetime.combine(today - dt.timedelta(days=1), dt.time.min)
    report = run(books["alice"], "partner_statement", start=today - dt.timedelta(days=1), end=today)
    lines = records(read(report))
    opening, *moves, closing = lines
    assert opening["line"] == "opening" and closing["line"] == "closing"
    assert cents(opening["balance"]) == ledger.partner_balance(
        db.session, aurora, "BRL", before=since
    ) == 17800  # fmt: skip
    # The period: the payout, then today's sale.
    assert [(x["kind"], cents(x["change"])) for x in moves] == [
        ("payout", -17800), ("capture", 17800),
    ]  # fmt: skip
    payout_posting = db.session.get(Payout, books["paid"]).ledger_transaction_id
    assert moves[0]["transaction_id"] == str(payout_posting)
    assert "TED 2026-1" in moves[0]["description"]
    assert [cents(x["balance"]) for x in moves] == [0, 17800]
    assert cents(closing["balance"]) == ledger.partner_balance(db.session, aurora, "BRL") == 17800
    assert (cents(closing["payouts"]), cents(closing["sales"]), cents(closing["fees"])) == (
        17800, 20000, 2200,
    )  # fmt: skip
    assert cents(closing["change"]) == cents(closing["balance"]) - cents(opening["balance"])

    # Over every day, the statement's totals are the ledger's (the balances page's) own.
    everything = records(
        read(run(books["fiona"], "partner_statement", "xlsx", start=books["day"], end=today))
    )
    closing = only(everything, line="closing", partner="Aurora")
    assert only(everything, line="opening", partner="Aurora")["balance"] == "0.00"
    book = statement(aurora)
    for key in ("sales", "fees", "refunds", "chargebacks", "fees_returned", "payouts"):
        assert cents(closing[key]) == book[key], key
    assert cents(closing["balance"]) == book["balance"]
    bossa = only(everything, line="closing", partner="Bossa")
    assert cents(bossa["balance"]) == ledger.partner_balance(db.session, books["bossa"], "BRL")


def test_platform_revenue_per_day_is_the_fee_accounts_movement(books):
    today = utcnow().date()
    report = run(books["fiona"], "platform_revenue", "xlsx", start=books["day"], end=today)
    lines = records(read(report))
    assert [(x["line"], x["day"]) for x in lines] == [
        ("day", books["day"].isoformat()), ("day", today.isoformat()), ("total", ""),
    ]  # fmt: skip
    earlier, current, total = lines
    # Two days ago: four sales' fees charged, two given back (refund, chargeback), the acquirer's
    # fee on the four charges. Today: one more sale.
    assert [cents(earlier[k]) for k in ("fees_charged", "fees_returned", "fees_kept")] == [
        8800, 4400, 4400,
    ]  # fmt: skip
    assert cents(earlier["gateway_fees"]) == 4 * 530
    assert (current["fees_kept"], current["gateway_fees"]) == ("22.00", "0.00")
    assert cents(total["fees_kept"]) == -balance(ledger.FEE_REVENUE) == 6600
    assert cents(total["gateway_fees"]) == balance(ledger.GATEWAY_FEES) == 2120
    assert cents(total["net"]) == 6600 - 2120


def test_the_payout_batch_lists_the_approved_payouts_to_transfer(books):
    lines = records(read(run(books["fiona"], "payout_batch")))
    approved = db.session.get(Payout, books["approved"])
    assert lines == [
        {
            "line": "payout", "payout_id": str(approved.id), "partner_id": str(books["bossa"].id),
            "partner": "Bossa", "currency": "BRL", "amount": "178.00",
            "reference": f"PAYOUT-{approved.id}", "bank_reference": "",
            "approved_at": approved.approved_at.isoformat(sep=" ", timespec="seconds"),
        },
        {
            "line": "total", "payout_id": "", "partner_id": "", "partner": "1 payout(s)",
            "currency": "BRL", "amount": "178.00", "reference": "", "bank_reference": "",
            "approved_at": "",
        },
    ]  # fmt: skip


def test_csv_and_xlsx_hold_the_same_rows_and_text_never_runs_as_a_formula(books):
    csv_rows = read(run(books["fiona"], "sales_by_event", "csv"))
    xlsx_report = run(books["fiona"], "sales_by_event", "xlsx")
    assert read(xlsx_report) == csv_rows
    name = only(records(csv_rows), line="event total", partner="Bossa")["event"]
    assert name == '\'=HYPERLINK("http://x")'
    path = reports.report_file(xlsx_report, Path(current_app.config["REPORTS_DIR"]))
    sheet = load_workbook(path).active
    assert "f" not in {cell.data_type for row in sheet.iter_rows() for cell in row}


def test_xlsx_money_is_numbers_with_a_currency_format_that_a_sum_adds_up(books):
    """Money in XLSX is a numeric cell, Decimal(cents) / 100, formatted "R$ 1.234,56" (text
    could not be summed); the CSV keeps the machine-readable "800.00"."""
    csv_lines = records(read(run(books["fiona"], "sales_by_event", "csv")))
    report = run(books["fiona"], "sales_by_event", "xlsx")
    sheet = load_workbook(
        reports.report_file(report, Path(current_app.config["REPORTS_DIR"]))
    ).active
    from app.services.reports.headers import HEADERS

    key_of = {str(label): key for key, label in HEADERS.items()}  # the header is in English
    header = [key_of.get(cell.value, cell.value) for cell in sheet[1]]
    rows = [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert len(rows) == len(csv_lines)
    for row, line in zip(rows, csv_lines, strict=True):
        for key in ("gross", "fees", "refunds", "chargebacks", "net"):
            cell = row[key]
            assert cell.data_type == "n" and isinstance(cell.value, int | float), (key, cell.value)
            assert cell.number_format == '"R$" #,##0.00'
            assert Decimal(str(cell.value)) == Decimal(line[key])  # exactly the CSV's amount
        assert row["tickets"].data_type == "n"  # counts stay numbers too
    aurora = str(books["event"].id)
    orders = [r for r in rows if r["line"].value == "order" and str(r["event_id"].value) == aurora]
    [total] = [
        r for r in rows if r["line"].value == "event total" and str(r["event_id"].value) == aurora
    ]
    # What =SUM() over the event's order rows gives in a spreadsheet: its total, to the cent.
    for key in ("gross", "fees", "refunds", "chargebacks", "net"):
        summed = sum(Decimal(str(r[key].value)) for r in orders)
        assert summed == Decimal(str(total[key].value))
    assert [Decimal(str(total[k].value)) for k in ("gross", "fees", "net")] == [
        Decimal("800"), Decimal("44"), Decimal("356"),
    ]  # fmt: skip
    grand = only(csv_lines, line="total", currency="BRL")
    assert grand["gross"] == "1000.00"  # CSV: a plain decimal, no symbol, no grouping


def test_the_payout_batch_and_statement_write_money_as_numbers(books):
    batch = run(books["fiona"], "payout_batch", "xlsx")
    sheet = load_workbook(
        reports.report_file(batch, Path(current_app.config["REPORTS_DIR"]))
    ).active
    amounts = [row[5] for row in sheet.iter_rows(min_row=2)]
    assert amounts and all(
        c.data_type == "n" and c.number_format == '"R$" #,##0.00' for c in amounts
    )
    today = utcnow().date()
    book = run(books["alice"], "partner_statement", "xlsx", start=books["day"], end=today)
    sheet = load_workbook(reports.report_file(book, Path(current_app.config["REPORTS_DIR"]))).active
    balances = [row[-1] for row in sheet.iter_rows(min_row=2)]
    assert all(c.data_type == "n" and c.number_format.endswith("#,##0.00") for c in balances)


def test_a_currency_format_uses_the_currencys_symbol():
    assert str(reports.Money(12345, "BRL")) == "123.45"
    assert currency_format("BRL") == '"R$" #,##0.00'
    assert currency_format("USD") == '"US$" #,##0.00'


def test_a_report_that_cannot_be_written_fails_visibly_and_leaves_no_file(
    books, monkeypatch, reports_dir
):
    def broken(*_args):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(reports.BUILDERS, reports.ReportKind.SALES, broken)
    report = reports.request_report(
        db.session, books["fiona"], "sales_by_event", "csv", now=utcnow()
    )
    assert report.status == ReportStatus.FAILED
    assert report.error == "The file could not be written." and report.file_name is None
    assert list(reports_dir.iterdir()) == []


def test_a_partner_requests_and_downloads_its_statement_in_the_dashboard(client, books):
    login(client, "alice")
    today = utcnow().date().isoformat()
    # Naming another partner changes nothing: the partner field is not there for partners.
    response = client.post(
        "/reportview/add",
        data={
            "kind": "partner_statement", "format": "xlsx", "start": books["day"].isoformat(),
            "end": today, "partner": str(books["bossa"].id),
        },
    )  # fmt: skip
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    report = db.session.scalars(select(Report)).one()
    assert response.headers["Location"].endswith(f"/reportview/show/{report.id}")
    assert (report.partner_id, report.status) == (books["aurora"].id, ReportStatus.DONE)
    assert report.requested_by_id == books["alice"].id
    shown = client.get(f"/reportview/show/{report.id}").get_data(as_text=True)
    assert f"/reportview/download/{report.id}" in shown and "Partner statement" in shown
    listing = client.get("/reportview/list/").get_data(as_text=True)
    assert f"/reportview/download/{report.id}" in listing

    download = client.get(f"/reportview/download/{report.id}")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert f"partner-statement-{books['day'].isoformat()}-{today}" in download.headers[
        "Content-Disposition"
    ]  # fmt: skip
    lines = records(parse(download.data, "xlsx"))
    assert {x["partner"] for x in lines} == {"Aurora"}
    closing = only(lines, line="closing")
    assert cents(closing["balance"]) == ledger.partner_balance(db.session, books["aurora"], "BRL")


def test_a_partner_cannot_see_or_download_another_partners_report(client, books):
    theirs = run(books["bob"], "sales_by_event")
    for_all = run(books["fiona"], "partner_statement", start=books["day"], end=utcnow().date())
    login(client, "alice")
    for report in (theirs, for_all):
        assert client.get(f"/reportview/show/{report.id}").status_code == 404
        assert client.get(f"/reportview/download/{report.id}").status_code == 404
    listing = client.get("/reportview/list/").get_data(as_text=True)
    assert f"/reportview/show/{theirs.id}" not in listing
    client.get("/logout/")
    login(client, "fiona")
    assert client.get(f"/reportview/download/{theirs.id}").status_code == 200
    assert client.get(f"/reportview/download/{for_all.id}").status_code == 200


@pytest.mark.parametrize("kind", ["platform_revenue", "payout_batch"])
def test_a_partner_cannot_request_platform_reports(client, books, kind):
    login(client, "alice")
    today = utcnow().date().isoformat()
    response = client.post(
        "/reportview/add", data={"kind": kind, "format": "csv", "start": today, "end": today}
    )
    assert response.status_code == 403
    field = response.get_data(as_text=True).split('id="kind"')[1]
    assert "Only finance requests" in field
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0


def test_a_period_ending_before_it_starts_is_refused_at_its_field(client, books):
    login(client, "fiona")
    response = client.post(
        "/reportview/add",
        data={"kind": "platform_revenue", "format": "csv", "start": "2026-03-10",
              "end": "2026-03-01", "partner": ""},
    )  # fmt: skip
    assert response.status_code == 200
    field = response.get_data(as_text=True).split('id="end"')[1]
    assert "The period ends before it starts." in field
    assert 'value="2026-03-10"' in response.get_data(as_text=True)  # the input is kept
    missing = client.post(
        "/reportview/add", data={"kind": "partner_statement", "format": "csv", "partner": ""}
    )
    assert "Give the period&#39;s first and last day." in missing.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0


def test_finance_requests_platform_revenue_and_downloads_it(client, books):
    login(client, "fiona")
    today = utcnow().date().isoformat()
    form = client.get("/reportview/add").get_data(as_text=True)
    assert "Platform revenue" in form and "Every partner" in form and "Bossa" in form
    response = client.post(
        "/reportview/add",
        data={"kind": "platform_revenue", "format": "csv", "start": books["day"].isoformat(),
              "end": today, "partner": ""},
        follow_redirects=True,
    )  # fmt: skip
    assert "is ready" in response.get_data(as_text=True)
    report = db.session.scalars(select(Report)).one()
    download = client.get(f"/reportview/download/{report.id}")
    total = only(records(parse(download.data, "csv")), line="total")
    assert cents(total["fees_kept"]) == -balance(ledger.FEE_REVENUE)
    refused = client.post(
        "/reportview/add",
        data={"kind": "platform_revenue", "format": "csv", "start": today, "end": today,
              "partner": str(books["bossa"].id)},
    )  # fmt: skip
    assert "covers every partner" in refused.get_data(as_text=True).split('id="partner"')[1]


def test_with_a_broker_the_report_waits_for_a_worker(client, books, monkeypatch):
    sent = []
    monkeypatch.setattr(reports, "enqueue", lambda _session, *task: sent.append(task))
    login(client, "bob")
    response = client.post("/reportview/add", data={"kind": "sales_by_event", "format": "csv"})
    assert response.status_code == 302
    report = db.session.scalars(select(Report)).one()
    assert sent == [("reports.generate", report.id)] and report.status == ReportStatus.PENDING
    assert client.get(f"/reportview/download/{report.id}").status_code == 404
    assert f"/reportview/download/{report.id}" not in client.get("/reportview/list/").get_data(
        as_text=True
    )  # fmt: skip

    assert celery.tasks["reports.generate"].apply(args=[report.id]).get() == "done"  # a worker
    db.session.refresh(report)
    assert report.status == ReportStatus.DONE and report.finished_at >= report.started_at
    download = client.get(f"/reportview/download/{report.id}")
    assert only(records(parse(download.data, "csv")), line="total")["net"] == "178.00"
    # A redelivered task finds the report written and leaves it alone.
    finished = report.finished_at
    assert celery.tasks["reports.generate"].apply(args=[report.id]).get() == "done"
    db.session.refresh(report)
    assert report.finished_at == finished


def test_a_partner_without_sales_gets_a_statement_at_zero(two_partners):
    alice = db.session.scalars(select(PartnerUser).where(PartnerUser.username == "alice")).one()
    today = utcnow().date()
    lines = records(read(run(alice, "partner_statement", start=today, end=today)))
    assert [(x["line"], x["partner"], x["currency"], x["balance"]) for x in lines] == [
        ("opening", "Partner A", "BRL", "0.00"), ("closing", "Partner A", "BRL", "0.00"),
    ]  # fmt: skip


def test_a_control_character_cannot_smuggle_a_formula_into_a_spreadsheet():
    smuggled = reports.spreadsheet_cell('\x01=HYPERLINK("http://x")')
    assert smuggled == '\'=HYPERLINK("http://x")'
    assert reports.spreadsheet_cell("-12.00") == "-12.00"  # amounts stay numbers


def test_old_report_files_are_deleted_and_the_reports_stay_listed_as_expired(
    client, books, reports_dir
):
    import datetime as dt
    import os

    period = {"start": books["day"], "end": utcnow().date()}
    old = run(books["fiona"], "platform_revenue", **period)
    recent = run(books["fiona"], "platform_revenue", **period)
    days = current_app.config["REPORT_RETENTION_DAYS"]
    old.finished_at = utcnow() - dt.timedelta(days=days, minutes=1)
    db.session.commit()
    old_file = reports.report_file(old, reports_dir)
    # Partial files: one a worker died writing two days ago, one being written now.
    dead, live = reports_dir / ".report-998.csv.part", reports_dir / ".report-999.csv.part"
    dead.write_text("half")
    live.write_text("half")
    two_days_ago = (utcnow() - dt.timedelta(days=2)).replace(tzinfo=dt.UTC).timestamp()
    os.utime(dead, (two_days_ago, two_days_ago))

    assert celery.tasks["reports.delete_old_files"].delay().get() == 1
    db.session.expire_all()
    assert (old.status, recent.status) == (ReportStatus.EXPIRED, ReportStatus.DONE)
    assert not old_file.exists() and reports.report_file(recent, reports_dir).exists()
    assert not dead.exists() and live.exists()
    with pytest.raises(NotFound, match=f"deleted after {days} days: request the report again"):
        reports.report_file(old, reports_dir)
    login(client, "fiona")
    assert client.get(f"/reportview/download/{old.id}").status_code == 404
    listing = client.get("/reportview/list/").get_data(as_text=True)
    assert "expired" in listing and f"/reportview/download/{old.id}" not in listing
    assert reports.delete_old_files(db.session, reports_dir) == 0  # nothing more to do


def test_old_report_files_are_deleted_every_night():
    schedule = celery.conf.beat_schedule["delete-old-report-files"]
    assert schedule["task"] == "reports.delete_old_files"
    assert schedule["schedule"].hour == {3} and schedule["schedule"].minute == {30}


def test_tickets_refunded_count_in_the_period_they_were_refunded_in(client, on_sale):
    """An order refunded ticket by ticket on two days shows one refunded ticket on each day,
    not two on both (found by a review)."""
    from app.models import Order, Ticket
    from app.services import refunds
    from app.services.payments import gateway
    from app.services.scoping import SYSTEM

    order = db.session.get(Order, buy(client, on_sale)["id"])
    first, second = sorted(t.id for t in order.tickets)
    refunds.refund_tickets(db.session, gateway(), order.id, [first], SYSTEM)
    posted_days_ago(2)
    with Session(db.engine) as session:  # the first ticket went back two days ago too
        revoked_at = session.get(Ticket, first).revoked_at
        session.execute(
            update(Ticket)
            .where(Ticket.id == first)
            .values(revoked_at=revoked_at - dt.timedelta(days=2))
        )
        session.commit()
    refunds.refund_tickets(db.session, gateway(), order.id, [second], SYSTEM)
    today = utcnow().date()
    counted = {}
    for days in (2, 0):
        day = today - dt.timedelta(days=days)
        columns, rows = reports.sales_rows(db.session, on_sale.partner_id, reports.Period(day, day))
        [row] = [dict(zip(columns, r, strict=False)) for r in rows if r[0] == "order"]
        counted[days] = row["tickets_refunded"]
    assert counted == {2: 1, 0: 1}
