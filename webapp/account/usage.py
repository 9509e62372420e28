"""``/log``: the account's usage with filters, totals per day and per model, and a small chart."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_login import login_required
from peewee import fn
from werkzeug.wrappers import Response

from kernel.models import RequestLog, Token
from kernel.money import format_usd
from webapp.account.blueprint import bp
from webapp.account.respond import account, render
from webapp.ids import MAX_ID, parse_id

USAGE_KINDS = ("relay", "upload")
PAGE_SIZE = 100
MAX_PAGE = MAX_ID // PAGE_SIZE  # the row offset must fit in 64 bits too


@dataclass(frozen=True)
class Filters:
    start: dt.date | None
    end: dt.date | None
    token_id: int | None
    model: str
    page: int

    @classmethod
    def from_args(cls, args: Any) -> tuple[Filters, str]:
        """Filters from the query string, and an error message for the part that made no sense."""
        error = ""

        def day(name: str) -> dt.date | None:
            nonlocal error
            raw = (args.get(name) or "").strip()
            if not raw:
                return None
            try:
                return dt.date.fromisoformat(raw)
            except ValueError:
                error = _("%(value)s is not a date (YYYY-MM-DD).", value=raw)
                return None

        start, end = day("from"), day("to")
        key = (args.get("key") or "").strip()
        page = (args.get("page") or "1").strip()
        return cls(start=start, end=end, token_id=parse_id(key),
                   model=(args.get("model") or "").strip()[:128],
                   page=max(1, min(parse_id(page) or 1, MAX_PAGE))), error


@dataclass(frozen=True)
class Total:
    label: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    units: int

    @property
    def usd(self) -> str:
        return format_usd(self.units)


def _where(user_id: int, f: Filters) -> Any:
    cond = (RequestLog.user_id == user_id) & RequestLog.kind.in_(USAGE_KINDS)
    if f.start:
        cond &= RequestLog.created_at >= dt.datetime.combine(f.start, dt.time())
    if f.end:
        cond &= RequestLog.created_at < dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time())
    if f.token_id is not None:
        cond &= RequestLog.token_id == f.token_id
    if f.model:
        cond &= RequestLog.model == f.model
    return cond


def _totals(cond: Any, group: Any) -> list[Total]:
    rows = (RequestLog.select(group.alias("label"), fn.COUNT(RequestLog.id).alias("n"),
                              fn.SUM(RequestLog.prompt_tokens).alias("p"),
                              fn.SUM(RequestLog.completion_tokens).alias("c"),
                              fn.SUM(RequestLog.quota).alias("q"))
            .where(cond).group_by(group).order_by(group).dicts())
    return [Total(label=str(r["label"]), requests=int(r["n"] or 0), prompt_tokens=int(r["p"] or 0),
                  completion_tokens=int(r["c"] or 0), units=int(r["q"] or 0)) for r in rows]


def chart_bars(days: list[Total], width: int = 600, height: int = 120) -> list[dict[str, Any]]:
    """Bar geometry for the daily-cost chart (an inline SVG; no JavaScript needed)."""
    if not days:
        return []
    top = max(d.units for d in days) or 1
    step = width / max(len(days), 14)  # a few days draw as a few bars, not one wide block
    return [{"x": round(i * step + step * 0.1, 1), "w": round(step * 0.8, 1),
             "h": round(height * d.units / top, 1), "y": round(height - height * d.units / top, 1),
             "label": d.label, "usd": d.usd} for i, d in enumerate(days)]


@bp.get("/log.json")
@bp.get("/log")
@login_required
def log() -> Response:
    """The account's usage, newest first."""
    user = account()
    filters, error = Filters.from_args(request.args)
    cond = _where(user.id, filters)
    rows = list(RequestLog.select().where(cond).order_by(RequestLog.id.desc())
                .offset((filters.page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    has_more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    per_day = _totals(cond, fn.DATE(RequestLog.created_at).coerce(False))
    per_model = _totals(cond, RequestLog.model)
    total_units = sum(t.units for t in per_day)
    tokens = list(Token.select(Token.id, Token.name).where(Token.user == user.id).order_by(Token.name))
    models = [r.model for r in RequestLog.select(RequestLog.model).distinct()
              .where((RequestLog.user_id == user.id) & RequestLog.kind.in_(USAGE_KINDS)).order_by(RequestLog.model)]
    data = {
        "balance_usd": format_usd(user.quota),
        "total_usd": format_usd(total_units), "total_units": total_units,
        "rows": [{"time": r.created_at.isoformat(), "key": r.token_name, "token_id": r.token_id,
                  "model": r.model, "kind": r.kind, "prompt_tokens": r.prompt_tokens,
                  "completion_tokens": r.completion_tokens, "cost_units": r.quota,
                  "cost_usd": format_usd(r.quota), "latency_ms": r.latency_ms, "status": r.status_code,
                  "error": r.error} for r in rows],
        "per_day": [asdict(t) | {"usd": t.usd} for t in per_day],
        "per_model": [asdict(t) | {"usd": t.usd} for t in per_model],
        "has_more": has_more,
    }
    if error:
        data = {"error": {"message": error}}
    return render("account/log.html", "account/_log.html", data, status=400 if error else 200,
                  user=user, rows=rows, per_day=per_day, per_model=per_model, total_units=total_units,
                  bars=chart_bars(per_day[-31:]), tokens=tokens, models=models, filters=filters,
                  error=error, has_more=has_more, format_usd=format_usd)
