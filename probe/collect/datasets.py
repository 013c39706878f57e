"""Data Sets (v9 and IPFIX alike): queued for the column decode, or held for their Template.

Flow Data Sets of a fixed-length Template join a run (``probe.collect.pending``) and are decoded
as columns at the next flush. Templates with a variable-length field, and options records, take
the per-record walk (``probe.collect.templates``) at once: options records change the domain
state that later Data Sets are read with.
"""

from __future__ import annotations

from probe.collect.columns import Layout, variable_columns
from probe.collect.flows import build_batch
from probe.collect.pending import SetFacts, context
from probe.collect.records import apply_options, fallback_rate
from probe.collect.session import HeldSet, MessageContext, Session, SessionTable
from probe.collect.templates import cut_records, decode_records
from probe.wire import DomainState, Template


def facts_of(ctx: MessageContext, ds_fallback: int, sys_init: int | None,
             samplers: dict[int, int]) -> SetFacts:
    return (ctx.received_ns, ctx.sequence, ctx.domain, ctx.exporter, ctx.export_secs,
            -1 if ctx.sys_uptime_ms is None else ctx.sys_uptime_ms, ctx.unix_nsecs,
            ds_fallback, -1 if sys_init is None else sys_init, samplers)


def with_exporter_wide(session: Session, domain: int, ds: DomainState) -> DomainState:
    """What a data domain's records are read with: its own options, and where it has none,
    those the exporter sent in observation domain 0, which RFC 7011 §3.1 keeps for what is
    not specific to one domain (flowprobe sends its selector reports and its
    systemInitTimeMilliseconds there, scoped by selector ids unique to the exporter)."""
    d0 = session.domains.get(0) if domain != 0 else None
    if d0 is None or ((ds.sampling_rate or ds.samplers) and ds.sys_init_ms is not None):
        return ds
    view = DomainState(sampling_rate=ds.sampling_rate, samplers=ds.samplers,
                       sys_init_ms=ds.sys_init_ms)
    if not (ds.sampling_rate or ds.samplers):
        view.sampling_rate, view.samplers = d0.sampling_rate, d0.samplers
    if ds.sys_init_ms is None:
        view.sys_init_ms = d0.sys_init_ms
    return view


def emit(table: SessionTable, session: Session, ctx: MessageContext, t: Template,
         layout: Layout | None, body: bytes) -> int:
    """Decode one Data Set with its template: flows are queued, options update the domain.

    Returns the number of records it holds (what an IPFIX sequence number counts).
    """
    ds = table.domain(session, ctx.domain)
    if t.is_options:
        records, problem = decode_records(t, body)
        if problem is not None:
            table.stats.bad(problem)
        for raw in records:
            apply_options(ds, raw, table.limits.max_samplers_per_domain,
                          lambda: table.sampler_room(session),
                          lambda n: table.sampler_refund(session, n))
        table.stats.options_records += len(records)
        return len(records)
    ds = with_exporter_wide(session, ctx.domain, ds)
    facts = facts_of(ctx, fallback_rate(ds, ctx.header_sampling), ds.sys_init_ms, ds.samplers)
    if layout is not None:
        size = layout.record_len
        count = len(body) // size
        if count:
            table.pending.add(layout, ctx.type, body if len(body) == count * size
                              else body[:count * size], count, facts)
        table.stats.count_records(ctx, count)
        return count
    rows, problem = cut_records(t, body)
    if problem is not None:
        table.stats.bad(problem)
    if rows:
        raw = dict(zip(t.names, variable_columns(t.specs, t.names, rows), strict=True))
        table.pending.ready.append(build_batch(ctx.type, raw,
                                               context([facts], [len(rows)], ctx.type),
                                               len(rows)))
    table.stats.count_records(ctx, len(rows))
    return len(rows)


def data_set(table: SessionTable, session: Session, ctx: MessageContext, template_id: int,
             body: bytes, now: float) -> int | None:
    """Decode a Data Set now, or hold it (None: how many records it has is not known yet)."""
    found = table.template(session, ctx.domain, template_id)
    if found is None:
        table.hold(session, HeldSet(ctx.domain, template_id, bytes(body), ctx, now))
        return None
    t, layout = found
    return emit(table, session, ctx, t, layout, body)


def release_held(table: SessionTable, session: Session, domain: int, t: Template) -> None:
    """A template arrived: decode the data sets that were waiting for it, in arrival order."""
    layout = session.layouts.get((domain, t.template_id))
    for h in table.take_held(session, domain, t.template_id):
        table.stats.held_decoded += 1
        emit(table, session, h.ctx, t, layout, h.body)
