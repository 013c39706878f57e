"""Data Sets (v9 and IPFIX alike): decode with the template, or hold until it arrives."""

from __future__ import annotations

from probe.collect.records import Record, apply_options, build_flow
from probe.collect.session import HeldSet, MessageContext, Session, SessionTable
from probe.collect.templates import Template, decode_records


def emit(table: SessionTable, session: Session, ctx: MessageContext, t: Template,
         body: bytes, out: list[Record]) -> int:
    """Decode one Data Set with its template; flows go to ``out``, options update the domain.

    Returns the number of records decoded (what an IPFIX sequence number counts).
    """
    records, problem = decode_records(t, body)
    if problem is not None:
        table.stats.bad(problem)
    ds = table.domain(session, ctx.domain)
    if t.is_options:
        for raw in records:
            apply_options(ds, raw, table.limits.max_samplers_per_domain)
        table.stats.options_records += len(records)
    else:
        for raw in records:
            out.append(build_flow(ctx, ds, raw))
        table.stats.records += len(records)
    return len(records)


def data_set(table: SessionTable, session: Session, ctx: MessageContext, template_id: int,
             body: bytes, now: float, out: list[Record]) -> int | None:
    """Decode a Data Set now, or hold it (None: how many records it has is not known yet)."""
    t = table.template(session, ctx.domain, template_id)
    if t is None:
        table.hold(session, HeldSet(ctx.domain, template_id, bytes(body), ctx, now))
        return None
    return emit(table, session, ctx, t, body, out)


def release_held(table: SessionTable, session: Session, domain: int, t: Template,
                 out: list[Record]) -> None:
    """A template arrived: decode the data sets that were waiting for it, in arrival order."""
    for h in table.take_held(session, domain, t.template_id):
        table.stats.held_decoded += 1
        emit(table, session, h.ctx, t, h.body, out)
