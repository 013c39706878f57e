/*
 * The flow table's per-packet core: a hash index over a numpy array of flow records, the
 * least-recently-used and creation-order lists, and the RFC 6728 expiry rules, run one packet
 * at a time over a whole batch in one call.
 *
 * Why C: a cache under a flood (every packet a new flow, the cache full) needs a lookup, an
 * insertion and an eviction per packet. In numpy those become windows of vectorised steps that
 * shrink to a few packets each when the cache is full; numba would cost 0.25 s of import and
 * 115 MB of resident memory in every run (measured: probe/cache/README in the project README's
 * Performance section). A small extension built by the package's own build does the exact
 * packet-at-a-time semantics directly, in O(1) per packet.
 *
 * Memory: the records live in one numpy structured array owned by Python (``probe.cache.table``
 * lays it out: key words, times, counters, the list links); this module owns only the bucket
 * array of the hash index (4 octets per slot). No Python object exists per flow.
 *
 * Ended flows are not copied: their slots are listed in ``exp``/``why`` (the "ended" list) and
 * stay out of use until Python has read them and calls ``release()``. A call returns early when
 * no free slot is left, so that Python can read the ended flows (or grow the array) and go on.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define NIL (-1)
#define MUL 0x9E3779B97F4A7C15ULL
#define MIX 0xBF58476D1CE4E5B9ULL

enum { END_IDLE = 1, END_ACTIVE = 2, END_OF_FLOW = 3, END_FORCED = 4, END_RESOURCES = 5 };
enum { DONE = 0, NO_ROOM = 1 };

/* Field offsets in a record; -1 where the cache's layout keeps no such field. */
enum {
    F_KEY, F_START, F_END, F_PACKETS, F_OCTETS, F_FLAGS, F_VERSION, F_USED,
    F_PREV, F_NEXT, F_OLDER, F_NEWER, F_CHAIN, F_FIRST,
    F_MINTTL, F_MAXTTL, F_MINLEN, F_MAXLEN,
    /* biflows (RFC 5103): the initiator's orientation, the last packet either way, and the
     * reverse direction's times and counters */
    F_INIT, F_LAST, F_RSTART, F_REND, F_RPACKETS, F_ROCTETS, F_RFLAGS, N_FIELDS
};
static const char *field_names[N_FIELDS] = {
    "key", "start", "end", "packets", "octets", "flags", "version", "used",
    "prev", "next", "older", "newer", "chain", "first",
    "min_ttl", "max_ttl", "min_len", "max_len",
    "init", "last", "rstart", "rend", "rpackets", "roctets", "rflags",
};

typedef struct {
    PyObject_HEAD
    Py_buffer rec, exp, why;
    int bound;
    char *base;
    Py_ssize_t size;
    int64_t cap;
    int words;
    Py_ssize_t off[N_FIELDS];
    int32_t *bucket;
    uint64_t nbucket;
    int shift;
    int32_t free_head;   /* released slots, linked through their chain field */
    int64_t fresh;       /* slots from here on were never used (their pages never touched) */
    int32_t lru_head, lru_tail;      /* least recently used first */
    int32_t old_head, old_tail;      /* oldest (first created) first */
    int64_t live, peak, nexp, nfree;
    int64_t idle, active, max_flows;
    int natural, refuse;
    Py_ssize_t o_last;   /* the time of a flow's last packet: "last" for biflows, else "end" */
} Table;

#define REC(t, s) ((t)->base + (Py_ssize_t)(s) * (t)->size)
#define I64(t, s, f) (*(int64_t *)(REC(t, s) + (t)->off[f]))
#define U64(t, s, f) (*(uint64_t *)(REC(t, s) + (t)->off[f]))
#define I32(t, s, f) (*(int32_t *)(REC(t, s) + (t)->off[f]))
#define U32(t, s, f) (*(uint32_t *)(REC(t, s) + (t)->off[f]))
#define U16(t, s, f) (*(uint16_t *)(REC(t, s) + (t)->off[f]))
#define U8(t, s, f) (*(uint8_t *)(REC(t, s) + (t)->off[f]))
#define KEY(t, s) ((uint64_t *)(REC(t, s) + (t)->off[F_KEY]))
#define LAST(t, s) (*(int64_t *)(REC(t, s) + (t)->o_last))

static inline uint64_t
hash_words(const uint64_t *k, Py_ssize_t stride, int words)
{
    uint64_t h = k[0] * MUL;
    for (int j = 1; j < words; j++) {
        h ^= k[j * stride];
        h *= MUL;
    }
    h ^= h >> 31;
    h *= MIX;
    h ^= h >> 29;
    return h;
}

/* ------------------------------------------------------------------ lists */

/* Both lists are doubly linked through two link fields of each record (``back``, ``fwd``). */
static inline void
list_unlink(Table *t, int32_t s, int back, int fwd, int32_t *head, int32_t *tail)
{
    int32_t p = I32(t, s, back), n = I32(t, s, fwd);
    if (p == NIL) *head = n; else I32(t, p, fwd) = n;
    if (n == NIL) *tail = p; else I32(t, n, back) = p;
}

static inline void
list_append(Table *t, int32_t s, int back, int fwd, int32_t *head, int32_t *tail)
{
    I32(t, s, back) = *tail;
    I32(t, s, fwd) = NIL;
    if (*tail == NIL) *head = s; else I32(t, *tail, fwd) = s;
    *tail = s;
}

#define lru_unlink(t, s) list_unlink(t, s, F_PREV, F_NEXT, &(t)->lru_head, &(t)->lru_tail)
#define lru_append(t, s) list_append(t, s, F_PREV, F_NEXT, &(t)->lru_head, &(t)->lru_tail)
#define age_unlink(t, s) list_unlink(t, s, F_OLDER, F_NEWER, &(t)->old_head, &(t)->old_tail)
#define age_append(t, s) list_append(t, s, F_OLDER, F_NEWER, &(t)->old_head, &(t)->old_tail)

static inline void
index_unlink(Table *t, int32_t s)
{
    uint64_t b = hash_words(KEY(t, s), 1, t->words) >> t->shift;
    int32_t *at = &t->bucket[b];
    while (*at != s)
        at = &I32(t, *at, F_CHAIN);
    *at = I32(t, s, F_CHAIN);
}

/* A flow ends: out of the index and both lists, onto the ended list with its reason. */
static void
end_flow(Table *t, int32_t s, uint8_t reason)
{
    index_unlink(t, s);
    lru_unlink(t, s);
    age_unlink(t, s);
    U8(t, s, F_USED) = 0;
    t->live--;
    ((int32_t *)t->exp.buf)[t->nexp] = s;
    ((uint8_t *)t->why.buf)[t->nexp] = reason;
    t->nexp++;
}

/* flowEndReason of a flow ended by time: the reason of its earlier deadline, idle on a tie. */
static inline uint8_t
time_reason(Table *t, int32_t s)
{
    if (!t->idle) return END_ACTIVE;
    if (!t->active) return END_IDLE;
    return LAST(t, s) + t->idle <= I64(t, s, F_START) + t->active ? END_IDLE : END_ACTIVE;
}

/* End every flow whose deadline the clock has passed. The least recently used flow has the
 * earliest idle deadline and the oldest flow the earliest active one, so only the heads of the
 * two lists need looking at. */
static void
sweep(Table *t, int64_t clock)
{
    for (;;) {
        int32_t s = t->lru_head;
        if (t->idle && s != NIL && LAST(t, s) + t->idle < clock) {
            end_flow(t, s, time_reason(t, s));
            continue;
        }
        s = t->old_head;
        if (t->active && s != NIL && I64(t, s, F_START) + t->active < clock) {
            end_flow(t, s, time_reason(t, s));
            continue;
        }
        return;
    }
}

/* ------------------------------------------------------------------ buffers */

static int
get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, Py_ssize_t need,
           const char *what)
{
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS |
                           PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len < need * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: need %zd items of %zd octets, got %zd of %zd",
                     what, need, itemsize, view->len / (view->itemsize ? view->itemsize : 1),
                     view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void
unbind(Table *t)
{
    if (t->bound) {
        PyBuffer_Release(&t->rec);
        PyBuffer_Release(&t->exp);
        PyBuffer_Release(&t->why);
        t->bound = 0;
    }
    t->base = NULL;
}

/* ------------------------------------------------------------------ methods */

static int
Table_init(Table *t, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"words", "size", "offsets", "idle_us", "active_us", "natural",
                             "max_flows", "refuse_when_full", NULL};
    PyObject *offsets;
    long long idle, active, max_flows;
    int words, natural, refuse;
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "inO!LLpLp", kwlist, &words, &size,
                                     &PyDict_Type, &offsets, &idle, &active, &natural,
                                     &max_flows, &refuse))
        return -1;
    if (words < 1 || size < 8 || idle < 0 || active < 0 || max_flows < 0) {
        PyErr_SetString(PyExc_ValueError, "bad flow table parameters");
        return -1;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        PyObject *v = PyDict_GetItemString(offsets, field_names[f]);
        t->off[f] = v ? PyLong_AsSsize_t(v) : -1;
        if (PyErr_Occurred())
            return -1;
        if (t->off[f] >= size) {
            PyErr_Format(PyExc_ValueError, "field %s outside the record", field_names[f]);
            return -1;
        }
    }
    for (int f = F_KEY; f <= F_CHAIN; f++) {
        if (t->off[f] < 0) {
            PyErr_Format(PyExc_ValueError, "record lacks field %s", field_names[f]);
            return -1;
        }
    }
    int bi = 0;
    for (int f = F_INIT; f < N_FIELDS; f++)
        bi += t->off[f] >= 0;
    if (bi != 0 && bi != N_FIELDS - F_INIT) {
        PyErr_SetString(PyExc_ValueError, "a biflow record needs every reverse field");
        return -1;
    }
    t->o_last = bi ? t->off[F_LAST] : t->off[F_END];
    unbind(t);
    PyMem_Free(t->bucket);
    t->bucket = NULL;
    t->words = words;
    t->size = size;
    t->idle = idle;
    t->active = active;
    t->natural = natural;
    t->max_flows = max_flows;
    t->refuse = refuse;
    t->cap = 0;
    t->free_head = t->lru_head = t->lru_tail = t->old_head = t->old_tail = NIL;
    t->live = t->peak = t->nexp = t->nfree = t->fresh = 0;
    return 0;
}

static void
Table_dealloc(Table *t)
{
    unbind(t);
    PyMem_Free(t->bucket);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

PyDoc_STRVAR(bind_doc,
"bind(records, ended, reasons)\n\n"
"Use ``records`` (the structured array, its length the capacity, never shorter than the last "
"one: it holds the same flows, grown) and the ended list (int32 and uint8 arrays as long). "
"The index is rebuilt; the ended list must have been released.");

static PyObject *
Table_bind(Table *t, PyObject *args)
{
    PyObject *rec, *exp, *why;
    if (!PyArg_ParseTuple(args, "OOO", &rec, &exp, &why))
        return NULL;
    if (t->nexp) {
        PyErr_SetString(PyExc_RuntimeError, "bind with ended flows not yet released");
        return NULL;
    }
    Py_buffer r, e, w;
    if (PyObject_GetBuffer(rec, &r, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (r.itemsize != t->size && !(r.len % t->size == 0 && r.itemsize == 1)) {
        PyBuffer_Release(&r);
        PyErr_SetString(PyExc_ValueError, "records: wrong record size");
        return NULL;
    }
    int64_t cap = r.len / t->size;
    if (cap > INT32_MAX - 1) {
        PyBuffer_Release(&r);
        PyErr_SetString(PyExc_OverflowError, "flow table too large");
        return NULL;
    }
    if (get_buffer(exp, &e, 1, 4, cap, "ended") < 0) {
        PyBuffer_Release(&r);
        return NULL;
    }
    if (get_buffer(why, &w, 1, 1, cap, "reasons") < 0) {
        PyBuffer_Release(&r);
        PyBuffer_Release(&e);
        return NULL;
    }
    uint64_t nb = 1024;
    int shift = 54;
    while ((int64_t)nb < cap) {
        nb <<= 1;
        shift--;
    }
    int32_t *bucket = PyMem_Malloc(nb * sizeof(int32_t));
    if (bucket == NULL) {
        PyBuffer_Release(&r);
        PyBuffer_Release(&e);
        PyBuffer_Release(&w);
        return PyErr_NoMemory();
    }
    unbind(t);
    PyMem_Free(t->bucket);
    t->rec = r;
    t->exp = e;
    t->why = w;
    t->bound = 1;
    t->base = r.buf;
    t->cap = cap;
    t->bucket = bucket;
    t->nbucket = nb;
    t->shift = shift;
    memset(bucket, 0xff, nb * sizeof(int32_t));
    /* Rebuild the index over the slots ever used; the lists' links and the free list are slot
     * numbers and stay valid. Slots past ``fresh`` are never read: their pages stay untouched
     * until a flow needs them, so a table never larger than it has been costs no memory. */
    for (int64_t s = 0; s < t->fresh; s++) {
        if (U8(t, s, F_USED)) {
            uint64_t b = hash_words(KEY(t, s), 1, t->words) >> t->shift;
            I32(t, s, F_CHAIN) = bucket[b];
            bucket[b] = (int32_t)s;
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(meter_doc,
"meter(t, keys, ip_len, tcp_flags, proto, ip_version, ttl, dir, created, a, b, seq0)"
" -> (pos, status, created, refused)\n\n"
"Meter packets a..b of a batch one at a time. ``t`` is the batch's packet clock (int64), "
"``keys`` its (words, n) uint64 key matrix; for a biflow table ``dir`` (uint8) says which "
"orientation of the key each packet has (the key is the same both ways), else None; "
"``created`` (int32, at least b - a long, or None) receives the slot of each flow created. Returns where it stopped: status 0 when done, 1 when "
"it needs a free slot for packet ``pos`` (read the ended flows and release them, or grow); "
"``refused``: packets of new flows a full cache that never evicts did not take.");

/* The batch columns meter() reads, after t: octets per element, writable. */
static const struct { Py_ssize_t itemsize; int writable; const char *name; } columns[] = {
    {8, 0, "keys"}, {4, 0, "ip_len"}, {2, 0, "tcp_flags"}, {1, 0, "proto"},
    {1, 0, "ip_version"}, {1, 0, "ttl"}, {1, 0, "dir"}, {4, 1, "created"},
};
#define N_COLUMNS 8
#define PREFETCH_BUCKET 8  /* packets ahead */
#define PREFETCH_RECORD 4
#define C_DIR 6
#define C_CREATED 7

static PyObject *
Table_meter(Table *t, PyObject *args)
{
    PyObject *tobj, *o[N_COLUMNS];
    Py_ssize_t a, b;
    long long seq0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOnnL", &tobj, &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7], &a, &b, &seq0))
        return NULL;
    if (!t->bound) {
        PyErr_SetString(PyExc_RuntimeError, "flow table not bound");
        return NULL;
    }
    Py_buffer tb, v[N_COLUMNS];
    int got = 0, taken[N_COLUMNS] = {0};
    PyObject *result = NULL;
    if (get_buffer(tobj, &tb, 0, 8, 0, "t") < 0)
        return NULL;
    Py_ssize_t n = tb.len / 8;
    if (a < 0 || b > n || a > b) {
        PyErr_SetString(PyExc_IndexError, "packet range outside the batch");
        goto done;
    }
    const int biflow = t->off[F_INIT] >= 0;
    if (biflow == (o[C_DIR] == Py_None)) {
        PyErr_SetString(PyExc_ValueError, biflow ? "a biflow table needs dir"
                                                 : "dir is for biflow tables");
        goto done;
    }
    for (; got < N_COLUMNS; got++) {
        if (o[got] == Py_None && (got == C_DIR || got == C_CREATED))
            continue;
        Py_ssize_t need = got == 0 ? (Py_ssize_t)t->words * n : got == C_CREATED ? b - a : n;
        if (get_buffer(o[got], &v[got], columns[got].writable, columns[got].itemsize, need,
                       columns[got].name) < 0)
            goto done;
        taken[got] = 1;
    }

    const int64_t *ts = tb.buf;
    const uint64_t *keys = v[0].buf;
    const uint32_t *ip_len = v[1].buf;
    const uint16_t *flags = v[2].buf;
    const uint8_t *proto = v[3].buf, *version = v[4].buf, *ttl = v[5].buf;
    const uint8_t *dir = taken[C_DIR] ? v[C_DIR].buf : NULL;
    int32_t *created = taken[C_CREATED] ? v[C_CREATED].buf : NULL;
    const int words = t->words;
    const int timed = t->idle || t->active;
    const int has_first = t->off[F_FIRST] >= 0;
    const int ttl_lo = t->off[F_MINTTL] >= 0, ttl_hi = t->off[F_MAXTTL] >= 0;
    const int len_lo = t->off[F_MINLEN] >= 0, len_hi = t->off[F_MAXLEN] >= 0;
    Py_ssize_t ncreated = 0, refused = 0, i;
    int status = DONE;

    for (i = a; i < b; i++) {
        int64_t clock = ts[i];
        /* A large table misses the CPU caches on every lookup: ask for the bucket of a packet
         * a few ahead, and for the record its bucket points at, so they arrive in time. */
        if (i + PREFETCH_BUCKET < b)
            __builtin_prefetch(&t->bucket[hash_words(keys + i + PREFETCH_BUCKET, n, words)
                                          >> t->shift]);
        if (i + PREFETCH_RECORD < b) {
            int32_t ahead = t->bucket[hash_words(keys + i + PREFETCH_RECORD, n, words)
                                      >> t->shift];
            if (ahead != NIL)
                __builtin_prefetch(KEY(t, ahead));
        }
        if (timed)
            sweep(t, clock);
        const uint64_t *k = keys + i;
        uint64_t h = hash_words(k, n, words);
        int32_t s = t->bucket[h >> t->shift];
        while (s != NIL) {
            const uint64_t *r = KEY(t, s);
            int j = 0;
            while (j < words && r[j] == k[(Py_ssize_t)j * n]) j++;
            if (j == words) break;
            s = I32(t, s, F_CHAIN);
        }
        if (s == NIL) {
            if (t->max_flows && t->live >= t->max_flows) {
                if (t->refuse) {
                    refused++;
                    continue;
                }
                end_flow(t, t->lru_head, END_RESOURCES);
            }
            if (t->free_head != NIL) {
                s = t->free_head;
                t->free_head = I32(t, s, F_CHAIN);
                t->nfree--;
            } else if (t->fresh < t->cap) {
                s = (int32_t)t->fresh++;
            } else {
                status = NO_ROOM;
                break;
            }
            uint64_t *r = KEY(t, s);
            for (int j = 0; j < words; j++) r[j] = k[(Py_ssize_t)j * n];
            uint64_t bkt = h >> t->shift;
            I32(t, s, F_CHAIN) = t->bucket[bkt];
            t->bucket[bkt] = s;
            I64(t, s, F_START) = clock;
            U64(t, s, F_PACKETS) = 0;
            U64(t, s, F_OCTETS) = 0;
            U16(t, s, F_FLAGS) = 0;
            U8(t, s, F_VERSION) = version[i];
            U8(t, s, F_USED) = 1;
            if (has_first) I64(t, s, F_FIRST) = seq0 + i;
            if (ttl_lo) U8(t, s, F_MINTTL) = 0xff;
            if (ttl_hi) U8(t, s, F_MAXTTL) = 0;
            if (len_lo) U32(t, s, F_MINLEN) = 0xffffffffu;
            if (len_hi) U32(t, s, F_MAXLEN) = 0;
            if (dir) {
                U8(t, s, F_INIT) = dir[i];
                U64(t, s, F_RPACKETS) = 0;
                U64(t, s, F_ROCTETS) = 0;
                U16(t, s, F_RFLAGS) = 0;
                I64(t, s, F_RSTART) = 0;
                I64(t, s, F_REND) = 0;
            }
            lru_append(t, s);
            age_append(t, s);
            if (++t->live > t->peak) t->peak = t->live;
            if (created) created[ncreated] = s;
            ncreated++;
        } else if (s != t->lru_tail) {
            lru_unlink(t, s);
            lru_append(t, s);
        }
        if (dir && dir[i] != U8(t, s, F_INIT)) {  /* the answer to the biflow's initiator */
            I64(t, s, F_LAST) = clock;
            if (U64(t, s, F_RPACKETS)++ == 0)
                I64(t, s, F_RSTART) = clock;
            I64(t, s, F_REND) = clock;
            U64(t, s, F_ROCTETS) += ip_len[i];
            U16(t, s, F_RFLAGS) |= flags[i];
        } else {
            if (dir) I64(t, s, F_LAST) = clock;
            I64(t, s, F_END) = clock;
            U64(t, s, F_PACKETS) += 1;
            U64(t, s, F_OCTETS) += ip_len[i];
            U16(t, s, F_FLAGS) |= flags[i];
            if (ttl_lo && ttl[i] < U8(t, s, F_MINTTL)) U8(t, s, F_MINTTL) = ttl[i];
            if (ttl_hi && ttl[i] > U8(t, s, F_MAXTTL)) U8(t, s, F_MAXTTL) = ttl[i];
            if (len_lo && ip_len[i] < U32(t, s, F_MINLEN)) U32(t, s, F_MINLEN) = ip_len[i];
            if (len_hi && ip_len[i] > U32(t, s, F_MAXLEN)) U32(t, s, F_MAXLEN) = ip_len[i];
        }
        /* A natural cache ends a flow on FIN or RST; a biflow on a RST either way, or once
         * both ends have sent their FIN. */
        if (t->natural && proto[i] == 6 && (flags[i] & 0x05)) {
            if (!dir || (flags[i] & 0x04)
                    || (U16(t, s, F_FLAGS) & U16(t, s, F_RFLAGS) & 0x01))
                end_flow(t, s, END_OF_FLOW);
        }
    }
    result = Py_BuildValue("nini", i, status, ncreated, refused);

done:
    for (int j = 0; j < N_COLUMNS; j++)
        if (taken[j])
            PyBuffer_Release(&v[j]);
    PyBuffer_Release(&tb);
    return result;
}

PyDoc_STRVAR(sweep_doc,
"sweep(clock) -> ended\n\nEnd every flow whose idle or active deadline ``clock`` has passed.");

static PyObject *
Table_sweep(Table *t, PyObject *arg)
{
    long long clock = PyLong_AsLongLong(arg);
    if (clock == -1 && PyErr_Occurred())
        return NULL;
    if (!t->bound) {
        PyErr_SetString(PyExc_RuntimeError, "flow table not bound");
        return NULL;
    }
    if (t->idle || t->active)
        sweep(t, clock);
    return PyLong_FromLongLong(t->nexp);
}

PyDoc_STRVAR(end_oldest_doc,
"end_oldest(count, reason) -> ended\n\nEnd up to ``count`` cached flows, oldest first, with "
"``reason`` (end of input ends them all, a slice at a time).");

static PyObject *
Table_end_oldest(Table *t, PyObject *args)
{
    long long count;
    int reason;
    if (!PyArg_ParseTuple(args, "Li", &count, &reason))
        return NULL;
    if (!t->bound) {
        PyErr_SetString(PyExc_RuntimeError, "flow table not bound");
        return NULL;
    }
    while (count-- > 0 && t->old_head != NIL)
        end_flow(t, t->old_head, (uint8_t)reason);
    return PyLong_FromLongLong(t->nexp);
}

PyDoc_STRVAR(release_doc,
"release()\n\nThe ended flows have been read: their slots become free.");

static PyObject *
Table_release(Table *t, PyObject *Py_UNUSED(ignored))
{
    const int32_t *exp = t->exp.buf;
    for (int64_t i = t->nexp - 1; i >= 0; i--) {
        int32_t s = exp[i];
        I32(t, s, F_CHAIN) = t->free_head;
        t->free_head = s;
    }
    t->nfree += t->nexp;
    t->nexp = 0;
    Py_RETURN_NONE;
}

static PyObject *
Table_unbind(Table *t, PyObject *Py_UNUSED(ignored))
{
    if (t->nexp) {
        PyErr_SetString(PyExc_RuntimeError, "unbind with ended flows not yet released");
        return NULL;
    }
    unbind(t);
    Py_RETURN_NONE;
}

static PyObject *
Table_get_live(Table *t, void *Py_UNUSED(c)) { return PyLong_FromLongLong(t->live); }
static PyObject *
Table_get_peak(Table *t, void *Py_UNUSED(c)) { return PyLong_FromLongLong(t->peak); }
static PyObject *
Table_get_ended(Table *t, void *Py_UNUSED(c)) { return PyLong_FromLongLong(t->nexp); }
static PyObject *
Table_get_free(Table *t, void *Py_UNUSED(c)) { return PyLong_FromLongLong(t->nfree + t->cap - t->fresh); }

static PyMethodDef Table_methods[] = {
    {"bind", (PyCFunction)Table_bind, METH_VARARGS, bind_doc},
    {"unbind", (PyCFunction)Table_unbind, METH_NOARGS,
     "unbind()\n\nLet go of the arrays (before they are resized)."},
    {"meter", (PyCFunction)Table_meter, METH_VARARGS, meter_doc},
    {"sweep", (PyCFunction)Table_sweep, METH_O, sweep_doc},
    {"end_oldest", (PyCFunction)Table_end_oldest, METH_VARARGS, end_oldest_doc},
    {"release", (PyCFunction)Table_release, METH_NOARGS, release_doc},
    {NULL}
};

static PyGetSetDef Table_getset[] = {
    {"live", (getter)Table_get_live, NULL, "flows cached", NULL},
    {"peak", (getter)Table_get_peak, NULL, "the most flows cached at once", NULL},
    {"ended", (getter)Table_get_ended, NULL, "ended flows not yet released", NULL},
    {"free", (getter)Table_get_free, NULL, "free slots", NULL},
    {NULL}
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "probe.cache._flowtable.Table",
    .tp_doc = PyDoc_STR("A flow table's index, lists and expiry over a records array."),
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
    .tp_getset = Table_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_flowtable",
    "The flow table's per-packet core (see probe.cache.table).", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__flowtable(void)
{
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
