/* JSON lines from columns: the collector's hot output path.
 *
 * render(n, plan) -> bytes. ``plan`` is a sequence of (prefix, kind, data, tokens, width):
 * for each of the n rows, every entry writes its prefix (the key, with the comma and the
 * opening brace as the Python side put them) and then the row's value from ``data``:
 *
 *   0 U64   data: n native uint64                    -> decimal
 *   1 I64   data: n native int64                     -> decimal, minus sign
 *   2 IPV4  data: n native uint32                    -> "a.b.c.d"
 *   3 IPV6  data: n x 16 octets                      -> "x:x::x" (RFC 5952, as Python's ipaddress)
 *   4 MAC   data: n native uint64 (low 48 bits)      -> "aa:bb:cc:dd:ee:ff"
 *   5 HEX   data: n x width octets                   -> "0a1b..."
 *   6 TOK   data: n native int32 indexes into tokens -> that token (bytes, rendered by Python)
 *
 * then "}\n". The Python side (probe.collect.flows) builds the plan and owns the meaning of every
 * value; this file only turns numbers into text. Reading numpy arrays through the buffer
 * protocol needs no numpy headers, as the flow table's core does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { K_U64, K_I64, K_IPV4, K_IPV6, K_MAC, K_HEX, K_TOK };

typedef struct {
    const char *prefix;
    Py_ssize_t prefix_len;
    int kind;
    Py_buffer buf;
    int have_buf;
    PyObject *tokens; /* borrowed: a list of bytes */
    Py_ssize_t width;
    Py_ssize_t max_token;
} Entry;

static const char HEXD[] = "0123456789abcdef";

static inline char *put_u64(char *p, uint64_t v) {
    char tmp[20];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i) *p++ = tmp[--i];
    return p;
}

static inline char *put_octet(char *p, unsigned v) {
    if (v >= 100) {
        *p++ = (char)('0' + v / 100);
        v %= 100;
        *p++ = (char)('0' + v / 10);
        *p++ = (char)('0' + v % 10);
    } else if (v >= 10) {
        *p++ = (char)('0' + v / 10);
        *p++ = (char)('0' + v % 10);
    } else {
        *p++ = (char)('0' + v);
    }
    return p;
}

static inline char *put_hextet(char *p, unsigned v) {
    int started = 0;
    for (int s = 12; s >= 0; s -= 4) {
        unsigned d = (v >> s) & 15;
        if (d || started || s == 0) {
            *p++ = HEXD[d];
            started = 1;
        }
    }
    return p;
}

/* RFC 5952 as Python's ipaddress writes it: the longest run of two or more zero hextets
 * (the first of equal runs) becomes "::"; hextets in lower case without leading zeros. */
static char *put_ipv6(char *p, const unsigned char *b) {
    unsigned h[8];
    for (int i = 0; i < 8; i++) h[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int i = 0; i < 8; i++) {
        if (h[i] == 0) {
            if (cur < 0) {
                cur = i;
                cur_len = 0;
            }
            cur_len++;
            if (cur_len > best_len) {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur = -1;
        }
    }
    if (best_len < 2) best = -1;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *p++ = ':';
            if (i == 0) *p++ = ':';
            i += best_len - 1;
            continue;
        }
        p = put_hextet(p, h[i]);
        if (i < 7) *p++ = ':';
    }
    return p;
}

static void release(Entry *e, Py_ssize_t k) {
    for (Py_ssize_t j = 0; j < k; j++)
        if (e[j].have_buf) PyBuffer_Release(&e[j].buf);
    PyMem_Free(e);
}

static PyObject *render(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    PyObject *plan;
    if (!PyArg_ParseTuple(args, "nO", &n, &plan)) return NULL;
    PyObject *seq = PySequence_Fast(plan, "plan must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    Entry *e = PyMem_Calloc(k ? k : 1, sizeof(Entry));
    if (!e) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t per_row = 2; /* "}\n" */
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, j);
        PyObject *prefix, *data, *tokens;
        if (!PyArg_ParseTuple(item, "SiOOn", &prefix, &e[j].kind, &data, &tokens, &e[j].width))
            goto fail;
        e[j].prefix = PyBytes_AS_STRING(prefix);
        e[j].prefix_len = PyBytes_GET_SIZE(prefix);
        if (PyObject_GetBuffer(data, &e[j].buf, PyBUF_C_CONTIGUOUS) < 0) goto fail;
        e[j].have_buf = 1;
        Py_ssize_t item_size, value_max;
        switch (e[j].kind) {
        case K_U64: item_size = 8; value_max = 20; break;
        case K_I64: item_size = 8; value_max = 20; break;
        case K_IPV4: item_size = 4; value_max = 17; break;
        case K_IPV6: item_size = 16; value_max = 41; break;
        case K_MAC: item_size = 8; value_max = 19; break;
        case K_HEX: item_size = e[j].width; value_max = 2 + 2 * e[j].width; break;
        case K_TOK:
            item_size = 4;
            if (!PyList_Check(tokens)) {
                PyErr_SetString(PyExc_TypeError, "TOK needs a list of bytes");
                goto fail;
            }
            e[j].tokens = tokens;
            value_max = 0;
            for (Py_ssize_t t = 0; t < PyList_GET_SIZE(tokens); t++) {
                PyObject *tok = PyList_GET_ITEM(tokens, t);
                if (!PyBytes_Check(tok)) {
                    PyErr_SetString(PyExc_TypeError, "tokens must be bytes");
                    goto fail;
                }
                if (PyBytes_GET_SIZE(tok) > value_max) value_max = PyBytes_GET_SIZE(tok);
            }
            break;
        default:
            PyErr_SetString(PyExc_ValueError, "unknown column kind");
            goto fail;
        }
        if (e[j].buf.len != item_size * n) {
            PyErr_Format(PyExc_ValueError, "column %zd: %zd bytes for %zd rows", j,
                         e[j].buf.len, n);
            goto fail;
        }
        per_row += e[j].prefix_len + value_max;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, per_row * n);
    if (!out) goto fail;
    char *start = PyBytes_AS_STRING(out), *p = start;
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t j = 0; j < k; j++) {
            Entry *c = &e[j];
            memcpy(p, c->prefix, (size_t)c->prefix_len);
            p += c->prefix_len;
            const char *d = c->buf.buf;
            switch (c->kind) {
            case K_U64:
                p = put_u64(p, ((const uint64_t *)d)[i]);
                break;
            case K_I64: {
                int64_t v = ((const int64_t *)d)[i];
                if (v < 0) {
                    *p++ = '-';
                    p = put_u64(p, (uint64_t)0 - (uint64_t)v);
                } else {
                    p = put_u64(p, (uint64_t)v);
                }
                break;
            }
            case K_IPV4: {
                uint32_t v = ((const uint32_t *)d)[i];
                *p++ = '"';
                p = put_octet(p, v >> 24);
                *p++ = '.';
                p = put_octet(p, (v >> 16) & 255);
                *p++ = '.';
                p = put_octet(p, (v >> 8) & 255);
                *p++ = '.';
                p = put_octet(p, v & 255);
                *p++ = '"';
                break;
            }
            case K_IPV6:
                *p++ = '"';
                p = put_ipv6(p, (const unsigned char *)d + 16 * i);
                *p++ = '"';
                break;
            case K_MAC: {
                uint64_t v = ((const uint64_t *)d)[i];
                *p++ = '"';
                for (int s = 40; s >= 0; s -= 8) {
                    unsigned o = (unsigned)(v >> s) & 255;
                    *p++ = HEXD[o >> 4];
                    *p++ = HEXD[o & 15];
                    if (s) *p++ = ':';
                }
                *p++ = '"';
                break;
            }
            case K_HEX: {
                const unsigned char *b = (const unsigned char *)d + c->width * i;
                *p++ = '"';
                for (Py_ssize_t t = 0; t < c->width; t++) {
                    *p++ = HEXD[b[t] >> 4];
                    *p++ = HEXD[b[t] & 15];
                }
                *p++ = '"';
                break;
            }
            case K_TOK: {
                int32_t t = ((const int32_t *)d)[i];
                if (t < 0 || t >= PyList_GET_SIZE(c->tokens)) {
                    Py_DECREF(out);
                    PyErr_SetString(PyExc_IndexError, "token index out of range");
                    goto fail;
                }
                PyObject *tok = PyList_GET_ITEM(c->tokens, t);
                memcpy(p, PyBytes_AS_STRING(tok), (size_t)PyBytes_GET_SIZE(tok));
                p += PyBytes_GET_SIZE(tok);
                break;
            }
            }
        }
        *p++ = '}';
        *p++ = '\n';
    }
    release(e, k);
    Py_DECREF(seq);
    if (_PyBytes_Resize(&out, p - start) < 0) return NULL;
    return out;
fail:
    release(e, k);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"render", render, METH_VARARGS, "render(n, plan) -> bytes: n JSON lines from columns"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonl",
                                    "JSON lines from columns (the collector's output path)",
                                    -1, methods};

PyMODINIT_FUNC PyInit__jsonl(void) { return PyModule_Create(&module); }
