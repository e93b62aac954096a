/* embrecall._native: the per-query steps of an exclusion that Python and numpy make slow.
 *
 * A search that excludes rows inside faiss marks them in a bitmap that an IDSelectorBitmap
 * reads, and clears them afterwards; a request's own ids arrive as a Python list of ints and
 * are looked up in an id -> row table (RowMap). After a graph search has evicted the caches,
 * each numpy call costs several microseconds and faiss's IDSelectorBatch builds a hash set per
 * query: these loops do the same work in one call each. The package runs without this module
 * (embrecall.native is then None, and pandas' hash table and faiss's batch selectors do the
 * work), so it is an optional build.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A writable, C-contiguous byte buffer (a numpy uint8 array). */
static int
bitmap_buffer(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->itemsize != 1) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "the bitmap must be a buffer of bytes");
        return -1;
    }
    return 0;
}

/* A C-contiguous buffer of int64 (a numpy int64 array); writable when asked. */
static int
int64_buffer(PyObject *obj, Py_buffer *view, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (view->itemsize != 8 || (strcmp(f, "q") != 0 && strcmp(f, "l") != 0)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "rows must be a contiguous int64 buffer");
        return -1;
    }
    return 0;
}

/* Set (or clear) the bits of `rows` in `bitmap`; rows outside it (e.g. -1) are skipped. */
static PyObject *
mark(PyObject *args, int set)
{
    PyObject *bitmap_obj, *rows_obj;
    if (!PyArg_ParseTuple(args, "OO", &bitmap_obj, &rows_obj))
        return NULL;
    Py_buffer bitmap, rows;
    if (bitmap_buffer(bitmap_obj, &bitmap) < 0)
        return NULL;
    if (int64_buffer(rows_obj, &rows, 0) < 0) {
        PyBuffer_Release(&bitmap);
        return NULL;
    }
    uint8_t *bits = (uint8_t *)bitmap.buf;
    const int64_t *r = (const int64_t *)rows.buf;
    const Py_ssize_t n = rows.len / 8;
    const uint64_t nbits = (uint64_t)bitmap.len * 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint64_t row = (uint64_t)r[i]; /* a negative row wraps beyond nbits */
        if (row < nbits) {
            const uint8_t bit = (uint8_t)(1u << (row & 7));
            if (set)
                bits[row >> 3] |= bit;
            else
                bits[row >> 3] &= (uint8_t)~bit;
        }
    }
    PyBuffer_Release(&rows);
    PyBuffer_Release(&bitmap);
    Py_RETURN_NONE;
}

static PyObject *
set_bits(PyObject *self, PyObject *args)
{
    return mark(args, 1);
}

static PyObject *
clear_bits(PyObject *self, PyObject *args)
{
    return mark(args, 0);
}

/* ---- RowMap: int64 id -> row, open addressing with linear probing ----------------------
 *
 * One slot holds an id and its row side by side (one cache line read per probe, where a table
 * of separate key and value arrays reads two); row -1 marks an empty slot. At most 70% full.
 * Read-only once built, so concurrent lookups need no lock.
 */
typedef struct {
    int64_t id;
    int64_t row;
} Slot;

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif
#define PREFETCH_MAX 4096 /* prefetching more than the caches hold evicts what it fetched */

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask; /* capacity - 1, capacity a power of two */
    Py_ssize_t size; /* distinct ids held */
} RowMap;

static inline uint64_t
slot_of(int64_t id, uint64_t mask)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: consecutive ids */
    return (h ^ (h >> 29)) & mask;                    /* spread over the table */
}

static inline int64_t
find(const RowMap *m, int64_t id)
{
    for (uint64_t s = slot_of(id, m->mask);; s = (s + 1) & m->mask) {
        const Slot *slot = &m->slots[s];
        if (slot->row < 0)
            return -1;
        if (slot->id == id)
            return slot->row;
    }
}

static void
RowMap_dealloc(RowMap *self)
{
    PyMem_RawFree(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* RowMap(ids): every id's row; a repeated id keeps its first row and counts once in len(). */
static int
RowMap_init(RowMap *self, PyObject *args, PyObject *kwds)
{
    PyObject *ids_obj;
    static char *kwlist[] = {"ids", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &ids_obj))
        return -1;
    Py_buffer ids;
    if (int64_buffer(ids_obj, &ids, 0) < 0)
        return -1;
    const Py_ssize_t n = ids.len / 8;
    uint64_t capacity = 16;
    while ((double)capacity * 0.7 < (double)n)
        capacity <<= 1;
    Slot *slots = PyMem_RawMalloc(capacity * sizeof(Slot));
    if (slots == NULL) {
        PyBuffer_Release(&ids);
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t s = 0; s < capacity; s++)
        slots[s].row = -1;
    const int64_t *id = (const int64_t *)ids.buf;
    const uint64_t mask = capacity - 1;
    Py_ssize_t size = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t s = slot_of(id[i], mask);
        while (slots[s].row >= 0 && slots[s].id != id[i])
            s = (s + 1) & mask;
        if (slots[s].row < 0) {
            slots[s].id = id[i];
            slots[s].row = i;
            size++;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ids);
    PyMem_RawFree(self->slots);
    self->slots = slots;
    self->mask = mask;
    self->size = size;
    return 0;
}

static Py_ssize_t
RowMap_len(RowMap *self)
{
    return self->size;
}

/* get(id) -> row, or -1 when not held (an int beyond int64 included); TypeError for a
 * non-int. */
static PyObject *
RowMap_get(RowMap *self, PyObject *key)
{
    if (!PyLong_Check(key)) {
        PyErr_Format(PyExc_TypeError, "an id must be an int, not %.50s", Py_TYPE(key)->tp_name);
        return NULL;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(overflow ? -1 : find(self, (int64_t)v));
}

/* lookup(ids, out): the rows of an int64 array into an int64 array of its length (-1: not
 * held). */
static PyObject *
RowMap_lookup(RowMap *self, PyObject *args)
{
    PyObject *ids_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO", &ids_obj, &out_obj))
        return NULL;
    Py_buffer ids, out;
    if (int64_buffer(ids_obj, &ids, 0) < 0)
        return NULL;
    if (int64_buffer(out_obj, &out, 1) < 0) {
        PyBuffer_Release(&ids);
        return NULL;
    }
    if (out.len != ids.len) {
        PyBuffer_Release(&out);
        PyBuffer_Release(&ids);
        PyErr_SetString(PyExc_ValueError, "out must have the length of ids");
        return NULL;
    }
    const int64_t *id = (const int64_t *)ids.buf;
    int64_t *row = (int64_t *)out.buf;
    const Py_ssize_t n = ids.len / 8;
    for (Py_ssize_t i = 0; i < n && i < PREFETCH_MAX; i++) /* a short list, as a query's */
        PREFETCH(&self->slots[slot_of(id[i], self->mask)]);
    for (Py_ssize_t i = 0; i < n; i++)
        row[i] = find(self, id[i]);
    PyBuffer_Release(&out);
    PyBuffer_Release(&ids);
    Py_RETURN_NONE;
}

/* lookup_list(ids, out) -> bool: the rows of a list of exact ints (the ids a service parsed)
 * into an int64 array of its length, -1 for ids not held; False, with `out` unspecified, for
 * a list holding anything else (bool included): the caller then takes its general path.
 * The table must not hold -1 (embrecall reserves that id): an int beyond int64 is looked up
 * as -1. */
static PyObject *
RowMap_lookup_list(RowMap *self, PyObject *args)
{
    PyObject *list, *out_obj;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &list, &out_obj))
        return NULL;
    Py_buffer out;
    if (int64_buffer(out_obj, &out, 1) < 0)
        return NULL;
    const Py_ssize_t n = PyList_GET_SIZE(list);
    int ok = out.len / 8 == n;
    int64_t *row = (int64_t *)out.buf;
    /* Two passes: the ids first, each slot's line prefetched, then the probes. After a search
     * has evicted the caches, most reads here miss; issued together, they overlap. */
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyLong_CheckExact(item)) {
            ok = 0;
            break;
        }
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            ok = 0;
            break;
        }
        row[i] = overflow ? -1 : (int64_t)v; /* beyond int64: as the reserved id -1, unheld */
        PREFETCH(&self->slots[slot_of(row[i], self->mask)]);
    }
    for (Py_ssize_t i = 0; ok && i < n; i++)
        row[i] = find(self, row[i]);
    PyBuffer_Release(&out);
    return PyBool_FromLong(ok);
}

static PyMethodDef RowMap_methods[] = {
    {"get", (PyCFunction)RowMap_get, METH_O, "get(id) -> row, or -1 when not held."},
    {"lookup", (PyCFunction)RowMap_lookup, METH_VARARGS,
     "lookup(ids, out): rows of an int64 array into an int64 array (-1: not held)."},
    {"lookup_list", (PyCFunction)RowMap_lookup_list, METH_VARARGS,
     "lookup_list(ids, out) -> bool: rows of a list of ints; False if it holds anything else."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods RowMap_as_sequence = {
    .sq_length = (lenfunc)RowMap_len,
};

static PyTypeObject RowMapType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "embrecall._native.RowMap",
    .tp_doc = "RowMap(ids): int64 id -> row (the first row of a repeated id).",
    .tp_basicsize = sizeof(RowMap),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RowMap_init,
    .tp_dealloc = (destructor)RowMap_dealloc,
    .tp_methods = RowMap_methods,
    .tp_as_sequence = &RowMap_as_sequence,
};

static PyMethodDef methods[] = {
    {"set_bits", set_bits, METH_VARARGS,
     "set_bits(bitmap, rows): set the bits of int64 rows in a uint8 bitmap (others skipped)."},
    {"clear_bits", clear_bits, METH_VARARGS,
     "clear_bits(bitmap, rows): clear the bits of int64 rows in a uint8 bitmap."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "embrecall._native",
    "Per-query loops of exclusions inside faiss (optional; see embrecall.index.exclusion).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&RowMapType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RowMapType);
    if (PyModule_AddObject(m, "RowMap", (PyObject *)&RowMapType) < 0) {
        Py_DECREF(&RowMapType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
