/*
 * svdcodec.runtime._kernels: the per-sample loops of the codec in C.
 *
 * Each function is the one-pass equivalent of a numpy path of the package (named in its
 * docstring) and gives the same bits: the numpy code stays the readable reference and the
 * fallback where this module is not built (it is an optional extension: `pip install` never
 * fails because of it). svdcodec/kernels.py decides which path runs.
 *
 * Why plain C against the CPython C-API and the buffer protocol, not Cython or numpy's C-API:
 * building then needs nothing but a C compiler (no build dependency, no numpy headers), and
 * the loops are small. Arrays arrive as buffers (dtype from the format string, any strides
 * unless a function says C-contiguous); the few results that are new arrays are made by
 * calling numpy.empty / numpy.zeros.
 *
 * Rules the code follows:
 *  - These functions get data from hostile files. Every argument's dtype, ndim, shape,
 *    contiguity and every size or index argument is checked before a loop runs (TypeError or
 *    ValueError); an index read from the data is checked against its array before use, and a
 *    failed check returns one of the error codes of kernels.SPARSE_ERRORS. No argument, however
 *    inconsistent, makes a loop read or write outside its buffers.
 *  - Element loads and stores go through memcpy: arrays sliced out of a decompressed buffer at
 *    an odd offset are not aligned (the compiler turns these into plain moves).
 *  - Arithmetic is float32 exactly where numpy's is (build with -ffp-contract=off: a*b + c must
 *    round twice as numpy's two operations do; no -ffast-math). Conversions of a float to an
 *    integer happen only on values proven in range, or give INT32_MIN where x86's conversion
 *    (numpy's) does, so that no input is undefined behaviour.
 *  - The GIL is released around every loop, so the codec's band threads run concurrently.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* The hot loops are compiled twice on x86-64 Linux (glibc resolves which one runs, once):
   for the baseline SSE2 and for AVX2, where the loops do twice the work per instruction. The
   results are the same bits: the same IEEE operations in the same order, and no fused
   multiply-add (AVX2 does not include FMA, and contraction is off anyway). The decoder's
   colour output (HOT_WIDE: chroma doubling, Y'CbCr -> RGB) is also compiled for AVX-512,
   whose float64 blends and conversions take a quarter less time per pixel than AVX2's
   (docs/performance.md); contraction stays off, so the bits are the same there too. Where
   the CPU has AVX2 and FMA, the colour output's rows run instead in one pass of intrinsics
   (ycc_row_avx2, ycc_row_avx512), the same operations lane by lane. FUSED_PRODUCT, named after
   the first of them (the exact product's fused multiply-adds), guards every hand-written x86
   intrinsic, with or without FMA: they need this compiler's target attributes and
   __builtin_cpu_supports, which choose them at import. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define HOT __attribute__((target_clones("avx2", "default")))
#define HOT_WIDE __attribute__((target_clones("avx512f", "avx2", "default")))
#define FUSED_PRODUCT 1
#define FUSED __attribute__((target("avx2,fma")))
#define FUSED_WIDE __attribute__((target("avx512f,fma")))
#else
#define HOT
#define HOT_WIDE
#define FUSED_PRODUCT 0
#endif

/* s + a * b for the exact product's sums, whose terms and partial sums are integers below
   2^53 (the bound): exact either way, so a fused multiply-add gives the same bits with one
   instruction instead of two. `fused` is a constant of each compiled copy: 1 only in the
   FUSED ones (run where the CPU has FMA), whose __builtin_fma is the instruction. */
#if FUSED_PRODUCT
#define MULTIPLY_ADD(fused, s, a, b) ((fused) ? __builtin_fma((a), (b), (s)) : (s) + (a) * (b))
#else
#define MULTIPLY_ADD(fused, s, a, b) ((s) + (a) * (b))
#endif

/* GCC/Clang vector types (8 float32, or 4 float64, to a 32-byte vector), for loops the
   compiler does not vectorize by itself (`quantize`'s strips). Their arithmetic is
   elementwise IEEE, as scalar code's: the same bits; other compilers take the scalar loops. */
#if defined(__GNUC__) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define VECTOR_TYPES 1
typedef float strip_f32 __attribute__((vector_size(32)));
typedef int32_t strip_i32 __attribute__((vector_size(32)));
typedef uint32_t strip_u32 __attribute__((vector_size(32)));
typedef int16_t strip_i16 __attribute__((vector_size(16)));
typedef double half_f64 __attribute__((vector_size(32)));
typedef int64_t half_i64 __attribute__((vector_size(32)));
typedef float quarter_f32 __attribute__((vector_size(16)));
#endif
#endif

#if defined(__GNUC__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define RESTRICT __restrict__
#define TRAILING_ZEROS(x) __builtin_ctzll(x)
#define RARELY(x) __builtin_expect(!!(x), 0) /* a branch laid out off the straight path */
#else
#include <intrin.h>
#define ALWAYS_INLINE static __forceinline
#define RESTRICT __restrict
#define RARELY(x) (x)
static __forceinline int TRAILING_ZEROS(uint64_t x)
{
    unsigned long k;
    _BitScanForward64(&k, x);
    return (int)k;
}
#endif

/* ------------------------------------------------------------------------ arrays */

enum {
    T_I8 = 1 << 0, T_U8 = 1 << 1, T_I16 = 1 << 2, T_U16 = 1 << 3, T_I32 = 1 << 4,
    T_U32 = 1 << 5, T_I64 = 1 << 6, T_U64 = 1 << 7, T_F32 = 1 << 8, T_F64 = 1 << 9,
    T_BOOL = 1 << 10,
};
#define T_SIGNED (T_I8 | T_I16 | T_I32 | T_I64)
#define T_INTS (T_SIGNED | T_U8 | T_U16 | T_U32 | T_U64)
#define T_INTS32 (T_I8 | T_U8 | T_I16 | T_U16 | T_I32 | T_U32)

/* A_FLAT: a C-contiguous buffer of any number of dimensions, seen as one (ndim 1): a dense
   block's residuals come as (count, gh, gw). */
enum { A_WRITABLE = 1, A_CONTIGUOUS = 2, A_FLAT = 4 };

typedef struct {
    Py_buffer view;
    int held;
    char *data;
    int ndim;
    Py_ssize_t shape[3];
    Py_ssize_t strides[3]; /* bytes */
    Py_ssize_t size;
    int type;              /* one T_ flag */
} Arr;

static PyObject *numpy_empty, *numpy_zeros;

static const char *type_name(int type)
{
    switch (type) {
    case T_I8: return "int8";
    case T_U8: return "uint8";
    case T_I16: return "int16";
    case T_U16: return "uint16";
    case T_I32: return "int32";
    case T_U32: return "uint32";
    case T_I64: return "int64";
    case T_U64: return "uint64";
    case T_F32: return "float32";
    case T_F64: return "float64";
    case T_BOOL: return "bool";
    default: return "an unsupported type";
    }
}

/* The T_ flag of a buffer format (one native item), or 0. */
static int format_type(const char *format, Py_ssize_t itemsize)
{
    if (format == NULL)
        return itemsize == 1 ? T_U8 : 0;
    if (*format == '@' || *format == '=')
        format++;
#if PY_LITTLE_ENDIAN
    else if (*format == '<')
        format++;
#else
    else if (*format == '>' || *format == '!')
        format++;
#endif
    if (format[0] == '\0' || format[1] != '\0')
        return 0;
    int is_signed;
    switch (format[0]) {
    case 'b': case 'h': case 'i': case 'l': case 'q': case 'n':
        is_signed = 1;
        break;
    case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N':
        is_signed = 0;
        break;
    case 'f':
        return itemsize == 4 ? T_F32 : 0;
    case 'd':
        return itemsize == 8 ? T_F64 : 0;
    case '?':
        return itemsize == 1 ? T_BOOL : 0;
    default:
        return 0;
    }
    switch (itemsize) {
    case 1: return is_signed ? T_I8 : T_U8;
    case 2: return is_signed ? T_I16 : T_U16;
    case 4: return is_signed ? T_I32 : T_U32;
    case 8: return is_signed ? T_I64 : T_U64;
    default: return 0;
    }
}

static void release(Arr *a)
{
    if (a->held) {
        PyBuffer_Release(&a->view);
        a->held = 0;
    }
}

/* Fill `a` from obj: ndim dimensions (A_FLAT: any number, seen as one), one of `types`,
   writable and C-contiguous if flags say. -1 with an exception set on failure. */
static int get_array(PyObject *obj, Arr *a, const char *name, int ndim, int types, int flags)
{
    int request = ((flags & A_FLAT) ? PyBUF_C_CONTIGUOUS : PyBUF_STRIDES) | PyBUF_FORMAT
                  | ((flags & A_WRITABLE) ? PyBUF_WRITABLE : 0);
    memset(a, 0, sizeof(*a));
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an array, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, &a->view, request) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a%s array", name, (flags & A_FLAT)
                     ? " C-contiguous" : (flags & A_WRITABLE) ? " writable" : "n");
        return -1;
    }
    a->held = 1;
    a->type = format_type(a->view.format, a->view.itemsize);
    if (!(a->type & types)) {
        PyErr_Format(PyExc_TypeError, "%s: %s array not supported here", name,
                     type_name(a->type));
        goto fail;
    }
    a->data = a->view.buf;
    if (flags & A_FLAT) {
        a->ndim = 1;
        a->size = a->shape[0] = a->view.len / a->view.itemsize;
        a->strides[0] = a->view.itemsize;
        return 0;
    }
    if (a->view.ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimension(s), not %d", name, ndim,
                     a->view.ndim);
        goto fail;
    }
    if ((flags & A_CONTIGUOUS) && !PyBuffer_IsContiguous(&a->view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous", name);
        goto fail;
    }
    a->ndim = ndim;
    a->size = 1;
    for (int i = 0; i < ndim; i++) {
        a->shape[i] = a->view.shape[i];
        a->size *= a->shape[i];
    }
    /* C-contiguous strides when the exporter gives none (a contiguous buffer). */
    Py_ssize_t stride = a->view.itemsize;
    for (int i = ndim - 1; i >= 0; i--) {
        a->strides[i] = a->view.strides ? a->view.strides[i] : stride;
        stride *= a->shape[i];
    }
    return 0;
fail:
    release(a);
    return -1;
}

/* A new numpy array (numpy.empty or numpy.zeros) of n items of dtype, and its buffer in a. */
static PyObject *new_array(PyObject *maker, Py_ssize_t n, const char *dtype, Arr *a)
{
    PyObject *array = PyObject_CallFunction(maker, "ns", n, dtype);
    if (array == NULL)
        return NULL;
    if (get_array(array, a, "result", 1, T_INTS | T_F32 | T_F64, A_WRITABLE | A_CONTIGUOUS)
        < 0) {
        Py_DECREF(array);
        return NULL;
    }
    return array;
}

static int value_error(const char *message)
{
    PyErr_SetString(PyExc_ValueError, message);
    return -1;
}

/* A kernel switch for tests and benchmarks (colour_rows, product_kernel, crc_kernel,
   encoder_kernels): the
   argument `level`, when >= 0 and at most `best`, becomes *in_use (ValueError `too_high`
   above best); returns the level in use before the call. */
static PyObject *switch_level(PyObject *args, PyObject *kwargs, const char *format,
                              int *in_use, int best, const char *too_high)
{
    static char *names[] = {"level", NULL};
    int level = -1, before = *in_use;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, names, &level))
        return NULL;
    if (level > best) {
        value_error(too_high);
        return NULL;
    }
    if (level >= 0)
        *in_use = level;
    return PyLong_FromLong(before);
}

/* a * b for non-negative sizes, or -1 when it would exceed PY_SSIZE_T_MAX. */
static Py_ssize_t mul_size(Py_ssize_t a, Py_ssize_t b)
{
    if (a < 0 || b < 0)
        return -1;
    if (a != 0 && b > PY_SSIZE_T_MAX / a)
        return -1;
    return a * b;
}

/* Loads and stores of possibly unaligned elements. */
ALWAYS_INLINE float ld_f32(const char *p) { float v; memcpy(&v, p, 4); return v; }
ALWAYS_INLINE uint32_t ld_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
ALWAYS_INLINE void st_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
ALWAYS_INLINE double ld_f64(const char *p) { double v; memcpy(&v, p, 8); return v; }
ALWAYS_INLINE uint16_t ld_u16(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
ALWAYS_INLINE int16_t ld_i16(const char *p) { int16_t v; memcpy(&v, p, 2); return v; }
ALWAYS_INLINE int32_t ld_i32(const char *p) { int32_t v; memcpy(&v, p, 4); return v; }
ALWAYS_INLINE int64_t ld_i64(const char *p) { int64_t v; memcpy(&v, p, 8); return v; }
ALWAYS_INLINE void st_f32(char *p, float v) { memcpy(p, &v, 4); }
ALWAYS_INLINE void st_f64(char *p, double v) { memcpy(p, &v, 8); }
ALWAYS_INLINE void st_i32(char *p, int32_t v) { memcpy(p, &v, 4); }

/* An integer element of any integer type as int64 (uint64 wraps, as numpy's int64 cast). */
ALWAYS_INLINE int64_t ld_int(const char *p, int type)
{
    switch (type) {
    case T_I8: return (int8_t)*p;
    case T_U8: return (uint8_t)*p;
    case T_I16: return ld_i16(p);
    case T_U16: return ld_u16(p);
    case T_I32: return ld_i32(p);
    case T_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case T_I64: return ld_i64(p);
    default: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    }
}

/* Store v into an integer element, wrapping to its width as numpy's casts do. */
ALWAYS_INLINE void st_int(char *p, int type, int64_t v)
{
    switch (type) {
    case T_I8: case T_U8: { uint8_t w = (uint8_t)v; memcpy(p, &w, 1); break; }
    case T_I16: case T_U16: { uint16_t w = (uint16_t)v; memcpy(p, &w, 2); break; }
    case T_I32: case T_U32: { uint32_t w = (uint32_t)v; memcpy(p, &w, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

/* x clamped to [lo, hi] for a conversion to an integer: NaN gives lo. */
ALWAYS_INLINE float clamp_f(float x, float lo, float hi)
{
    x = x > lo ? x : lo;
    return x < hi ? x : hi;
}

ALWAYS_INLINE int clamp_byte(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

/* ------------------------------------------------------------------------ decoding: sparse */

/* Symbols, run escapes and value escapes among the 64 bytes at p: one pass of byte compares
   that vectorizes (a row end, 0x08, counts as neither escape). */
ALWAYS_INLINE void count_block(const uint8_t *p, unsigned *ends, unsigned *runs,
                               unsigned *values)
{
    uint8_t e = 0, r = 0, v = 0;
    for (int i = 0; i < 64; i++) {
        e += p[i] == 0x08;
        r += p[i] >= 0xF0;
        v += (p[i] & 15) == 0;
    }
    *ends = e;
    *runs = r;
    *values = v;
}

HOT static int index_sparse_run(const char *sym, Py_ssize_t stride, Py_ssize_t n, int64_t rows,
                                int64_t n_xrun, int64_t n_xval, int64_t every,
                                int64_t *starts, int64_t *xr, int64_t *xv)
{
    int64_t row = 0, runs = 0, values = 0;
    Py_ssize_t s = 0;
    /* Contiguous symbols: 64-byte blocks that hold no checkpoint (most of them) are only
       counted; a block that reaches one is walked symbol by symbol below. */
    while (stride == 1 && s + 64 <= n) {
        unsigned e, r, v;
        count_block((const uint8_t *)sym + s, &e, &r, &v);
        if ((row + e) / every != row / every || row + e > rows)
            break;
        row += e;
        runs += r;
        values += v;
        s += 64;
    }
    for (; s < n; s++) {
        unsigned code = (uint8_t)sym[s * stride];
        if (code == 0x08) {
            row++;
            if (row > rows)
                return 1;
            if (row % every == 0) { /* k <= rows / every: inside the arrays */
                int64_t k = row / every;
                starts[k] = s + 1;
                xr[k] = runs;
                xv[k] = values;
            }
            /* Past a checkpoint: count whole blocks again up to the next one. */
            while (stride == 1 && s + 1 + 64 <= n) {
                unsigned e, r, v;
                count_block((const uint8_t *)sym + s + 1, &e, &r, &v);
                if ((row + e) / every != row / every || row + e > rows)
                    break;
                row += e;
                runs += r;
                values += v;
                s += 64;
            }
            continue;
        }
        runs += (code >> 4) == 15;
        values += (code & 15) == 0;
    }
    if (row != rows || (n && (uint8_t)sym[(n - 1) * stride] != 0x08))
        return 1;
    if (runs != n_xrun || values != n_xval)
        return 2;
    return 0;
}

PyDoc_STRVAR(index_sparse_doc,
"index_sparse(symbols, rows, n_xrun, n_xval, every) -> (starts, xr, xv, error)\n\n"
"Checkpoints of a sparse block every `every` rows: (first symbol of row k * every, run\n"
"escapes before it, value escapes before it), int64 arrays of rows // every + 1, and an\n"
"error code (kernels.SPARSE_ERRORS). Checks what decoder.factors.sparse_streams checks: the row ends\n"
"and the side streams' sizes.");

static PyObject *index_sparse(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"symbols", "rows", "n_xrun", "n_xval", "every", NULL};
    PyObject *o_symbols, *o_starts = NULL, *o_xr = NULL, *o_xv = NULL, *result = NULL;
    Py_ssize_t rows, n_xrun, n_xval, every;
    Arr symbols = {0}, starts = {0}, xr = {0}, xv = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onnnn:index_sparse", names, &o_symbols,
                                     &rows, &n_xrun, &n_xval, &every))
        return NULL;
    if (get_array(o_symbols, &symbols, "symbols", 1, T_U8, 0) < 0)
        goto done;
    if (every < 1 || rows < 0) {
        value_error("index_sparse: rows must be >= 0 and every >= 1");
        goto done;
    }
    Py_ssize_t marks = rows / every + 1;
    if (!(o_starts = new_array(numpy_zeros, marks, "int64", &starts))
        || !(o_xr = new_array(numpy_zeros, marks, "int64", &xr))
        || !(o_xv = new_array(numpy_zeros, marks, "int64", &xv)))
        goto done;
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = index_sparse_run(symbols.data, symbols.strides[0], symbols.size, rows, n_xrun,
                             n_xval, every, (int64_t *)starts.data, (int64_t *)xr.data,
                             (int64_t *)xv.data);
    Py_END_ALLOW_THREADS
    release(&starts);
    release(&xr);
    release(&xv);
    result = Py_BuildValue("(OOOi)", o_starts, o_xr, o_xv, error);
done:
    release(&symbols);
    release(&starts);
    release(&xr);
    release(&xv);
    Py_XDECREF(o_starts);
    Py_XDECREF(o_xr);
    Py_XDECREF(o_xv);
    return result;
}

typedef struct {
    const char *symbols;
    Py_ssize_t n_symbols, symbols_stride;
    const char *xrun;
    Py_ssize_t n_xrun, xrun_stride;
    int xrun_type;
    const char *xval;
    Py_ssize_t n_xval, xval_stride;
    int xval_type;
    int64_t s, a, v, row; /* the checkpoint's state */
    int64_t r0, r1;
    char *out;
    Py_ssize_t out_row, out_col; /* strides */
    int64_t first, width, count;
    const char *scale;
    Py_ssize_t scale_stride;
    int zero;
    /* reduce_sparse: out holds q sums per row, basis row j the q values of component j */
    const char *basis;
    Py_ssize_t basis_row, basis_col;
    int64_t q;
} SparseFill;

static void zero_columns(const SparseFill *f, int64_t row)
{
    char *p = f->out + row * f->out_row + f->first * f->out_col;
    if (f->out_col == 4) { /* contiguous columns (a band's buffer): one memset */
        memset(p, 0, (size_t)f->width * 4);
        return;
    }
    for (int64_t j = 0; j < f->width; j++)
        st_f32(p + j * f->out_col, 0.0f);
}

/* What fill_rows and reduce_sparse_run need of a symbol byte, looked up once: the value of a
   literal (low nibble - 8; 0 for the row end), the run of zeros before it (high nibble), whether
   it ends the row (end, and keep = end - 1, the mask that keeps the column), and whether it
   leaves the straight path: a run escape (high nibble 15), a value escape (low nibble 0) or an
   invalid low nibble 8 (other than the row end). */
typedef struct {
    float value;
    uint8_t run, end, special;
    int64_t keep;
} SymbolEntry;

static SymbolEntry symbol_table[256];

static void fill_symbol_table(void)
{
    for (unsigned code = 0; code < 256; code++) {
        unsigned low = code & 15;
        int special = code >= 0xF0 || low == 0 || (low == 8 && code != 0x08);
        symbol_table[code] = (SymbolEntry){
            (float)((int)low - 8), (uint8_t)(code >> 4), code == 0x08, (uint8_t)special,
            code == 0x08 ? 0 : -1,
        };
    }
}

/* n floats of +0 at p. Up to 16 (a patch-4 plane's rank, most rows of a decode) in at most
   four 16-byte stores, overlapping where n is not a multiple of 4, instead of a call to
   memset, which costs more than a row of a few dozen bytes (and a loop of stores would be
   compiled into that call). */
ALWAYS_INLINE void zero_floats(char *p, int64_t n)
{
    static const float zeros[4];
    if (n > 16) {
        memset(p, 0, (size_t)n * 4);
    } else if (n >= 4) { /* [0, 4) and [n - 4, n), then [4, 8) and [n - 8, n - 4) */
        memcpy(p, zeros, 16);
        memcpy(p + 4 * (n - 4), zeros, 16);
        if (n > 8) {
            memcpy(p + 16, zeros, 16);
            memcpy(p + 4 * (n - 8), zeros, 16);
        }
    } else {
        for (int64_t j = 0; j < 3; j++)
            if (j < n)
                st_f32(p + 4 * j, 0.0f);
    }
}

/* Rows that fill_rows zeroes ahead of the symbols that fill them: a few of a band's buffer,
   still in the cache when their symbols are stored. */
#define FILL_ZERO_ROWS 16

/* fill_sparse_run's rows when every component of the block is filled (width = count >= 1),
   the symbols are contiguous and out's and scale's columns are contiguous floats (a band's
   buffer): `rows` rows from the checkpoint state (s, a, v), which is at the first of them.
   Each symbol is looked up once in symbol_table, and a row end runs the same instructions as
   a literal (no branch on it: where a row ends is the data's, and a branch on it mispredicted
   about once a row): it stores its value, 0, into `sink` instead of the row (the address
   chosen by its keep mask), moves `line` on by its mask and restarts the column count. The
   escapes and invalid codes (special: a few in a hundred symbols) take a branch. The rows are
   zeroed FILL_ZERO_ROWS at a time before their symbols, where zero. The errors are found in
   fill_sparse_run's order (a row end's column is at most count, so its check never fails, as
   there it is not made), so both give the same result on any input. */
ALWAYS_INLINE int fill_rows(const SparseFill *f, int64_t s, int64_t a, int64_t v, int64_t rows)
{
    const uint8_t *sym = (const uint8_t *)f->symbols + s;
    const uint8_t *const last = (const uint8_t *)f->symbols + f->n_symbols;
    const int64_t count = f->count;
    const Py_ssize_t out_row = f->out_row;
    const char *scale = f->scale + 4 * f->first;
    const int zero = f->zero;
    char *line = f->out + 4 * f->first;
    float sink;
    const uintptr_t sink_at = (uintptr_t)&sink;
    int64_t col = 0;
    while (rows > 0) {
        int64_t left = rows < FILL_ZERO_ROWS ? rows : FILL_ZERO_ROWS;
        rows -= left;
        if (zero)
            for (int64_t r = 0; r < left; r++)
                zero_floats(line + r * out_row, count);
        do {
            if (RARELY(sym >= last))
                return 1;
            const unsigned code = *sym++;
            const SymbolEntry *e = &symbol_table[code];
            int64_t c = col + e->run;
            float value = e->value;
            if (RARELY(e->special)) {
                if ((code & 15) == 8)
                    return 3;
                if (code >= 0xF0) {
                    if (a >= f->n_xrun)
                        return 2;
                    /* At most 32 bits (checked), and col < count <= 2^32: no overflow. */
                    c += ld_int(f->xrun + a * f->xrun_stride, f->xrun_type);
                    a++;
                }
                if ((uint64_t)c >= (uint64_t)count) /* negative only from a signed run array */
                    return 4;
                if ((code & 15) == 0) {
                    if (v >= f->n_xval)
                        return 2;
                    int64_t escaped = ld_int(f->xval + v * f->xval_stride, f->xval_type);
                    v++;
                    if (escaped == 0)
                        return 5;
                    value = (float)escaped;
                }
            } else if (RARELY((uint64_t)c >= (uint64_t)(count + e->end))) {
                return 4;
            }
            /* The address by masks, not a conditional (which GCC compiles to a branch); a row
               end's column may be count: it reads scale[0] instead. */
            const int64_t keep = e->keep; /* all ones, or 0 for the row end */
            char *at = (char *)(((uintptr_t)(line + 4 * c) & (uintptr_t)keep)
                                | (sink_at & ~(uintptr_t)keep));
            st_f32(at, value * ld_f32(scale + 4 * (c & keep)));
            line += out_row & ~keep;
            left -= e->end;
            col = (c + 1) & keep;
        } while (left > 0);
    }
    return 0;
}

/* The fields of f are copied into locals first: the stores into out go through char
   pointers, which may alias f, so reading f in the loop would reload every field after every
   store. */
HOT static int fill_sparse_run(const SparseFill *f)
{
    const uint8_t *sym = (const uint8_t *)f->symbols;
    const Py_ssize_t stride = f->symbols_stride, out_row = f->out_row, out_col = f->out_col;
    const Py_ssize_t scale_stride = f->scale_stride;
    const int64_t n = f->n_symbols, r0 = f->r0, r1 = f->r1, count = f->count;
    const int64_t width = f->width, first = f->first, n_xrun = f->n_xrun, n_xval = f->n_xval;
    const char *scale = f->scale;
    const int zero = f->zero;
    int64_t s = f->s, a = f->a, v = f->v, row = f->row, col = 0;
    const int fast = stride == 1 && out_col == 4 && scale_stride == 4 && width == count
        && count > 0;
    if (zero && !fast && row == r0 && r0 < r1)
        zero_columns(f, 0);
    while (row < r0) { /* between the checkpoint and r0: only count the escapes */
        if (s >= n)
            return 1;
        unsigned code = sym[s * stride];
        s++;
        if (code == 0x08) {
            row++;
            if (zero && !fast && row == r0 && row < r1)
                zero_columns(f, 0);
            continue;
        }
        a += (code >> 4) == 15;
        v += (code & 15) == 0;
    }
    if (fast)
        return fill_rows(f, s, a, v, r1 - row);
    char *out_line = f->out;
    while (row < r1) {
        if (s >= n)
            return 1;
        unsigned code = sym[s * stride];
        s++;
        if (code == 0x08) {
            row++;
            col = 0;
            out_line += out_row;
            if (zero && row < r1)
                zero_columns(f, row - r0);
            continue;
        }
        int64_t low = code & 15, run = code >> 4;
        if (low == 8)
            return 3;
        if (run == 15) {
            if (a >= n_xrun)
                return 2;
            /* At most 32 bits (checked), and col < count <= 2^32: no overflow. */
            run += ld_int(f->xrun + a * f->xrun_stride, f->xrun_type);
            a++;
        }
        col += run;
        if (col < 0 || col >= count) /* negative only from a signed run array */
            return 4;
        int64_t value;
        if (low == 0) {
            if (v >= n_xval)
                return 2;
            value = ld_int(f->xval + v * f->xval_stride, f->xval_type);
            v++;
            if (value == 0)
                return 5;
        } else {
            value = low - 8;
        }
        if (col < width) {
            int64_t j = first + col;
            st_f32(out_line + j * out_col, (float)value * ld_f32(scale + j * scale_stride));
        }
        col++;
    }
    return 0;
}

/* reduce_sparse over rows [r0, r1), out and basis C-contiguous, scale and basis finite: ws[k] =
   scale[first + k] and wb[k * q ..] = basis[first + k, :] for k < width, and a zero row ws[width]
   = 0, wb[width] = 0 for the components past width. Every symbol runs the same instructions
   (no branch on the row end, which the data makes unpredictable): a row end adds the term of
   its (in-range) column times the value 0, a zero (finite weights), which leaves the sum's bits
   as they are (the sums start at +0 and x + 0 = x for any other x). A row's additions chain
   through memory, the next row's start apart from them. q is 1 or the basis's width. */
ALWAYS_INLINE int reduce_rows(const SparseFill *f, const float *ws, const float *wb,
                              const int64_t q)
{
    const uint8_t *sym = (const uint8_t *)f->symbols;
    const Py_ssize_t stride = f->symbols_stride;
    int64_t s = f->s, a = f->a, v = f->v, row = f->row, col = 0;
    const int64_t n = f->n_symbols, count = f->count, width = f->width;
    while (row < f->r0) { /* from the checkpoint to r0: only count the escapes */
        if (s >= n)
            return 1;
        unsigned code = sym[s * stride];
        s++;
        row += code == 0x08;
        a += code >= 0xF0;
        v += (code & 15) == 0;
    }
    char *out = f->out;
    for (int64_t i = 0, rows = f->r1 - row; i < rows;) {
        if (s >= n)
            return 1;
        unsigned code = sym[s * stride];
        s++;
        const SymbolEntry *e = &symbol_table[code];
        int64_t c = col + e->run;
        float value = e->value;
        if (e->special) {
            if ((code & 15) == 8)
                return 3;
            if (code >= 0xF0) {
                if (a >= f->n_xrun)
                    return 2;
                /* At most 32 bits (checked), and col < count <= 2^32: no overflow. */
                c += ld_int(f->xrun + a * f->xrun_stride, f->xrun_type);
                a++;
            }
            if ((code & 15) == 0) {
                if (v >= f->n_xval)
                    return 2;
                int64_t escaped = ld_int(f->xval + v * f->xval_stride, f->xval_type);
                v++;
                if (escaped == 0)
                    return 5;
                value = (float)escaped;
            }
        }
        /* A row end's c is its row's column count, at most count (then k <= width, in range);
           a negative c comes only from a signed run array and is refused too. */
        if ((uint64_t)c >= (uint64_t)(count + e->end))
            return 4;
        int64_t k = c < width ? c : width;
        float left = value * ws[k];
        char *RESTRICT o = out + i * 4 * q; /* out and the weights' copy are apart */
        const float *RESTRICT b = wb + k * q;
        for (int64_t j = 0; j < q; j++)
            st_f32(o + 4 * j, ld_f32(o + 4 * j) + left * b[j]);
        i += e->end;
        col = (c + 1) & e->keep;
    }
    return 0;
}

HOT static int reduce_sparse_run(const SparseFill *f, const float *ws, const float *wb)
{
    return f->q == 1 ? reduce_rows(f, ws, wb, 1) : reduce_rows(f, ws, wb, f->q);
}

/* The arguments fill_sparse and reduce_sparse share, checked, into f (and the arrays, which
   the caller releases); -1 with an exception set on failure. */
static int sparse_setup(PyObject *o[6], Arr arrays[6], Py_ssize_t every, Py_ssize_t r0,
                        Py_ssize_t r1, Py_ssize_t first, Py_ssize_t width, Py_ssize_t count,
                        const Arr *scale, const char *name, SparseFill *f)
{
    Arr *symbols = &arrays[0], *xrun = &arrays[1], *xval = &arrays[2], *starts = &arrays[3],
        *xr = &arrays[4], *xv = &arrays[5];
    if (get_array(o[0], symbols, "symbols", 1, T_U8, 0) < 0
        || get_array(o[1], xrun, "xrun", 1, T_INTS32, 0) < 0
        || get_array(o[2], xval, "xval", 1, T_INTS, 0) < 0
        || get_array(o[3], starts, "starts", 1, T_INTS, 0) < 0
        || get_array(o[4], xr, "xr", 1, T_INTS, 0) < 0
        || get_array(o[5], xv, "xv", 1, T_INTS, 0) < 0)
        return -1;
    if (every < 1 || r0 < 0 || r1 < r0 || first < 0 || width < 0 || count < 0
        || count > ((Py_ssize_t)1 << 32)) {
        PyErr_Format(PyExc_ValueError, "%s: needs every >= 1, 0 <= r0 <= r1, first >= 0, "
                     "width >= 0, 0 <= count <= 2^32", name);
        return -1;
    }
    if (scale->size < first + width) {
        PyErr_Format(PyExc_ValueError, "%s: scale too small for columns [first, first + width)",
                     name);
        return -1;
    }
    Py_ssize_t k = r0 / every;
    if (starts->size != xr->size || starts->size != xv->size || k >= starts->size) {
        PyErr_Format(PyExc_ValueError, "%s: no checkpoint for row r0", name);
        return -1;
    }
    *f = (SparseFill){
        symbols->data, symbols->size, symbols->strides[0],
        xrun->data, xrun->size, xrun->strides[0], xrun->type,
        xval->data, xval->size, xval->strides[0], xval->type,
        ld_int(starts->data + k * starts->strides[0], starts->type),
        ld_int(xr->data + k * xr->strides[0], xr->type),
        ld_int(xv->data + k * xv->strides[0], xv->type),
        (int64_t)k * every, r0, r1,
        NULL, 0, 0,
        first, width, count,
        scale->data, scale->strides[0], 0,
        NULL, 0, 0, 0,
    };
    if (f->s < 0 || f->a < 0 || f->v < 0) {
        PyErr_Format(PyExc_ValueError, "%s: negative checkpoint", name);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(fill_sparse_doc,
"fill_sparse(symbols, xrun, xval, starts, xr, xv, every, r0, r1, out, first, width, count,\n"
"            scale, zero=False) -> int\n\n"
"out[k - r0, first + j] = value of row k, component j, times scale[first + j], for rows\n"
"[r0, r1) and j < width: decoder.factors.fill_sparse and the scaling of PlaneReconstructor.load, from the\n"
"checkpoint at or before r0 (`index_sparse`). out is zeroed by the caller, or here, a row's\n"
"columns as the row begins (zero). Returns an error code (kernels.SPARSE_ERRORS), 0 on\n"
"success.");

static PyObject *fill_sparse(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"symbols", "xrun", "xval", "starts", "xr", "xv", "every", "r0",
                            "r1", "out", "first", "width", "count", "scale", "zero", NULL};
    PyObject *o[8];
    Py_ssize_t every, r0, r1, first, width, count;
    int zero = 0;
    Arr arrays[6], out = {0}, scale = {0};
    PyObject *result = NULL;
    SparseFill f;
    memset(arrays, 0, sizeof(arrays));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOnnnOnnnO|p:fill_sparse", names,
                                     &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &every, &r0,
                                     &r1, &o[6], &first, &width, &count, &o[7], &zero))
        return NULL;
    if (get_array(o[6], &out, "out", 2, T_F32, A_WRITABLE) < 0
        || get_array(o[7], &scale, "scale", 1, T_F32, 0) < 0
        || sparse_setup(o, arrays, every, r0, r1, first, width, count, &scale, "fill_sparse",
                        &f) < 0)
        goto done;
    if (out.shape[0] < r1 - r0 || first > out.shape[1] || width > out.shape[1] - first) {
        value_error("fill_sparse: out too small for rows [r0, r1) and columns "
                    "[first, first + width)");
        goto done;
    }
    f.out = out.data;
    f.out_row = out.strides[0];
    f.out_col = out.strides[1];
    f.zero = zero;
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = fill_sparse_run(&f);
    Py_END_ALLOW_THREADS
    result = PyLong_FromLong(error);
done:
    for (int i = 0; i < 6; i++)
        release(&arrays[i]);
    release(&out);
    release(&scale);
    return result;
}

PyDoc_STRVAR(reduce_sparse_doc,
"reduce_sparse(symbols, xrun, xval, starts, xr, xv, every, r0, r1, out, first, width, count,\n"
"              scale, basis) -> int\n\n"
"out[k - r0, :] += (value of row k, component j, times scale[first + j]) * basis[first + j, :]\n"
"for every non-zero value of rows [r0, r1) and j < width, in the order of the symbols (row by\n"
"row, components ascending): decoder.reduced.reduced_product's additions of this block's\n"
"components (float32, each product and sum rounded, as numpy's), without the factor's rows.\n"
"out is (rows, q) and basis (components, q). Returns an error code (kernels.SPARSE_ERRORS),\n"
"0 on success.");

static PyObject *reduce_sparse(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"symbols", "xrun", "xval", "starts", "xr", "xv", "every", "r0",
                            "r1", "out", "first", "width", "count", "scale", "basis", NULL};
    PyObject *o[9];
    Py_ssize_t every, r0, r1, first, width, count;
    Arr arrays[6], out = {0}, scale = {0}, basis = {0};
    PyObject *result = NULL;
    SparseFill f;
    memset(arrays, 0, sizeof(arrays));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOnnnOnnnOO:reduce_sparse", names,
                                     &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &every, &r0,
                                     &r1, &o[6], &first, &width, &count, &o[7], &o[8]))
        return NULL;
    if (get_array(o[6], &out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0
        || get_array(o[7], &scale, "scale", 1, T_F32, 0) < 0
        || get_array(o[8], &basis, "basis", 2, T_F32, A_CONTIGUOUS) < 0
        || sparse_setup(o, arrays, every, r0, r1, first, width, count, &scale,
                        "reduce_sparse", &f) < 0)
        goto done;
    if (out.shape[0] < r1 - r0 || out.shape[1] != basis.shape[1]
        || basis.shape[0] < first + width) {
        value_error("reduce_sparse: out must have r1 - r0 rows and basis's columns, basis a "
                    "row for each component [first, first + width)");
        goto done;
    }
    Py_ssize_t q = basis.shape[1];
    Py_ssize_t weights = mul_size(width + 1, q + 1);
    if (q < 1 || weights < 0 || weights > PY_SSIZE_T_MAX / 4) {
        value_error("reduce_sparse: basis must have at least one column");
        goto done;
    }
    f.out = out.data;
    f.out_row = out.strides[0];
    f.out_col = 4;
    f.q = q;
    /* ws (width + 1) then wb ((width + 1) x q), the last of each zero */
    float *ws = PyMem_Calloc((size_t)weights, sizeof(float));
    if (ws == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *wb = ws + width + 1;
    int finite = 1;
    for (Py_ssize_t j = 0; j < width; j++) {
        ws[j] = ld_f32(scale.data + (first + j) * scale.strides[0]);
        memcpy(wb + j * q, basis.data + (first + j) * basis.strides[0], (size_t)q * 4);
        finite &= isfinite(ws[j]) != 0;
        for (Py_ssize_t i = 0; i < q; i++)
            finite &= isfinite(wb[j * q + i]) != 0;
    }
    if (!finite) {
        PyMem_Free(ws);
        value_error("reduce_sparse: scale and basis must be finite");
        goto done;
    }
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = reduce_sparse_run(&f, ws, wb);
    Py_END_ALLOW_THREADS
    PyMem_Free(ws);
    result = PyLong_FromLong(error);
done:
    for (int i = 0; i < 6; i++)
        release(&arrays[i]);
    release(&out);
    release(&scale);
    release(&basis);
    return result;
}

/* ------------------------------------------------------------------------ decoding: exact product */

/* Rows of an exact plane (spec §5.1): out[i, j] = fl32(fl64(V[i, j] 2^-F + mean[j])) with
   V[i, j] = sum_k A[i, k] * (W_k B[j, k]), bw[k * cols + j] = W_k B[j, k]. Under the bound
   (max|A| max|B| sum(W) < 2^53, checked by the caller before this runs) every product and
   partial sum is an integer below 2^53, so binary64 holds each exactly and V is the same in
   any order: numpy's (A W) @ B^T (BLAS dgemm), this loop, a JavaScript decoder's. So a row's
   terms are added only for its non-zero A[i, k] (most are zero: the factors are sparse), in
   two interleaved sums (two chains of additions, each waiting on the one before it, instead
   of one), added at the end. A sum that is zero is +0 whatever the order (round-to-nearest
   gives -0 only for -0 + -0, and every sum starts at +0), as BLAS's is. V * 2^-F is exact (a
   power of two, no underflow for integers), so one binary64 addition and the float32
   conversion are the two roundings of codec.exact.exact_product. The non-zero terms of a row
   are listed without a branch (an index written at every k, the count advanced by whether
   A[i, k] is non-zero): a branch on the data mispredicts more than the work it saves.
   Patch 4's 16 columns take exact_rows16, multiples of 32 (patch 8's 64, patch 16's 256)
   exact_rows32; other counts up to 64 sum in local arrays, larger ones in sums0 and sums1
   (cols each).
   An adapted plane (spec 5.5, mult: M per row; rank >= 1) sums components >= 1 alone, then
   V = M * sum + (16 A[i, 0]) bw[j]: the same integers as summing A o M's terms, every product
   and partial sum again an integer within the bound (M <= max|A o M| / max|A[i, k >= 1]|). */
ALWAYS_INLINE void exact_rows(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                              Py_ssize_t rows, Py_ssize_t rank, const double *RESTRICT bw,
                              const Py_ssize_t cols, double unit, const double *means,
                              double *RESTRICT values, Py_ssize_t *RESTRICT terms,
                              double *RESTRICT sums0, double *RESTRICT sums1, char *out,
                              Py_ssize_t out_row, const int32_t *mult, const int fused)
{
    double local[2][64];
    double *RESTRICT s0 = cols <= 64 ? local[0] : sums0;
    double *RESTRICT s1 = cols <= 64 ? local[1] : sums1;
    const Py_ssize_t first = mult != NULL; /* adapted: column 0 added at the end */
    for (Py_ssize_t i = 0; i < rows; i++) {
        const char *a = left + i * left_row;
        Py_ssize_t n = 0;
        for (Py_ssize_t k = first; k < rank; k++) {
            double ak = (double)ld_f32(a + k * left_col);
            values[n] = ak;
            terms[n] = k * cols;
            n += ak != 0.0;
        }
        for (Py_ssize_t j = 0; j < cols; j++) {
            s0[j] = 0.0;
            s1[j] = 0.0;
        }
        Py_ssize_t t = 0;
        for (; t + 1 < n; t += 2) {
            const double a0 = values[t], a1 = values[t + 1];
            const double *RESTRICT b0 = bw + terms[t], *RESTRICT b1 = bw + terms[t + 1];
            for (Py_ssize_t j = 0; j < cols; j++) {
                s0[j] = MULTIPLY_ADD(fused, s0[j], a0, b0[j]);
                s1[j] = MULTIPLY_ADD(fused, s1[j], a1, b1[j]);
            }
        }
        if (t < n) {
            const double a0 = values[t];
            const double *RESTRICT b0 = bw + terms[t];
            for (Py_ssize_t j = 0; j < cols; j++)
                s0[j] = MULTIPLY_ADD(fused, s0[j], a0, b0[j]);
        }
        char *o = out + i * out_row;
        if (mult != NULL) {
            const double m = mult[i], a0 = 16.0 * (double)ld_f32(a);
            for (Py_ssize_t j = 0; j < cols; j++)
                s0[j] = MULTIPLY_ADD(fused, (s0[j] + s1[j]) * m, a0, bw[j]);
            for (Py_ssize_t j = 0; j < cols; j++)
                s1[j] = 0.0;
        }
        if (means != NULL) {
            for (Py_ssize_t j = 0; j < cols; j++)
                st_f32(o + 4 * j, (float)((s0[j] + s1[j]) * unit + means[j]));
        } else {
            for (Py_ssize_t j = 0; j < cols; j++)
                st_f32(o + 4 * j, (float)((s0[j] + s1[j]) * unit));
        }
    }
}

/* exact_rows for a multiple of 32 columns (patch 8's 64, patch 16's 256): a row's non-zero
   terms listed once, then added 32 columns at a time into one sum per column, which the
   compiler keeps in registers (eight AVX2 vectors) across the terms. exact_rows' two sums of
   64 columns are 32 vectors, twice AVX2's registers, so most of its additions load and store
   their sum. Exact integers again (see exact_rows): one chain per column instead of two gives
   the same bits, and a zero sum is +0 as there. */
ALWAYS_INLINE void exact_rows32(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                Py_ssize_t rows, Py_ssize_t rank, const double *RESTRICT bw,
                                const Py_ssize_t cols, double unit, const double *means,
                                double *RESTRICT values, Py_ssize_t *RESTRICT terms, char *out,
                                Py_ssize_t out_row, const int32_t *mult, const int fused)
{
    const Py_ssize_t first = mult != NULL; /* adapted: column 0 added at the end */
    for (Py_ssize_t i = 0; i < rows; i++) {
        const char *a = left + i * left_row;
        Py_ssize_t n = 0;
        for (Py_ssize_t k = first; k < rank; k++) {
            double ak = (double)ld_f32(a + k * left_col);
            values[n] = ak;
            terms[n] = k * cols;
            n += ak != 0.0;
        }
        char *o = out + i * out_row;
        const double m = mult != NULL ? (double)mult[i] : 0.0;
        const double a0 = mult != NULL ? 16.0 * (double)ld_f32(a) : 0.0;
        for (Py_ssize_t j0 = 0; j0 < cols; j0 += 32) {
            double s[32];
            for (Py_ssize_t j = 0; j < 32; j++)
                s[j] = 0.0;
            for (Py_ssize_t t = 0; t < n; t++) {
                const double at = values[t];
                const double *RESTRICT b = bw + terms[t] + j0;
                for (Py_ssize_t j = 0; j < 32; j++)
                    s[j] = MULTIPLY_ADD(fused, s[j], at, b[j]);
            }
            if (mult != NULL) {
                for (Py_ssize_t j = 0; j < 32; j++)
                    s[j] = MULTIPLY_ADD(fused, s[j] * m, a0, bw[j0 + j]);
            }
            if (means != NULL) {
                for (Py_ssize_t j = 0; j < 32; j++)
                    st_f32(o + 4 * (j0 + j), (float)(s[j] * unit + means[j0 + j]));
            } else {
                for (Py_ssize_t j = 0; j < 32; j++)
                    st_f32(o + 4 * (j0 + j), (float)(s[j] * unit));
            }
        }
    }
}

/* exact_rows for 16 columns (patch 4): three rows at a time and every term, zero or not (with
   so few columns a row's list of non-zero terms costs more than the terms it skips). The three
   rows' sums are written out as three arrays of 16, which the compiler keeps in registers
   (twelve AVX2 vectors, with room for a factor: four rows' 16 vectors took every register, so
   that additions loaded and stored their sums): independent chains of additions, each B row
   read once for three rows. */
ALWAYS_INLINE void exact_rows16(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                Py_ssize_t rows, Py_ssize_t rank, const double *RESTRICT bw,
                                double unit, const double *means, char *out,
                                Py_ssize_t out_row, const int32_t *mult, const int fused)
{
    const Py_ssize_t first = mult != NULL; /* adapted (see exact_rows): column 0 at the end */
    Py_ssize_t i = 0;
    for (; i + 3 <= rows; i += 3) {
        const char *a0 = left + i * left_row, *a1 = a0 + left_row, *a2 = a1 + left_row;
        double s0[16], s1[16], s2[16];
        for (Py_ssize_t j = 0; j < 16; j++)
            s0[j] = s1[j] = s2[j] = 0.0;
        for (Py_ssize_t k = first; k < rank; k++) {
            const double *RESTRICT b = bw + k * 16;
            const double x0 = ld_f32(a0 + k * left_col), x1 = ld_f32(a1 + k * left_col),
                         x2 = ld_f32(a2 + k * left_col);
            for (Py_ssize_t j = 0; j < 16; j++) {
                s0[j] = MULTIPLY_ADD(fused, s0[j], x0, b[j]);
                s1[j] = MULTIPLY_ADD(fused, s1[j], x1, b[j]);
                s2[j] = MULTIPLY_ADD(fused, s2[j], x2, b[j]);
            }
        }
        if (mult != NULL) {
            const double m0 = mult[i], m1 = mult[i + 1], m2 = mult[i + 2];
            const double x0 = 16.0 * (double)ld_f32(a0), x1 = 16.0 * (double)ld_f32(a1),
                         x2 = 16.0 * (double)ld_f32(a2);
            for (Py_ssize_t j = 0; j < 16; j++) {
                s0[j] = MULTIPLY_ADD(fused, s0[j] * m0, x0, bw[j]);
                s1[j] = MULTIPLY_ADD(fused, s1[j] * m1, x1, bw[j]);
                s2[j] = MULTIPLY_ADD(fused, s2[j] * m2, x2, bw[j]);
            }
        }
        double *sums[3] = {s0, s1, s2};
        for (Py_ssize_t g = 0; g < 3; g++) {
            char *o = out + (i + g) * out_row;
            const double *sg = sums[g];
            if (means != NULL) {
                for (Py_ssize_t j = 0; j < 16; j++)
                    st_f32(o + 4 * j, (float)(sg[j] * unit + means[j]));
            } else {
                for (Py_ssize_t j = 0; j < 16; j++)
                    st_f32(o + 4 * j, (float)(sg[j] * unit));
            }
        }
    }
    for (; i < rows; i++) { /* the last rows, one at a time */
        const char *a = left + i * left_row;
        double sg[16];
        for (Py_ssize_t j = 0; j < 16; j++)
            sg[j] = 0.0;
        for (Py_ssize_t k = first; k < rank; k++) {
            const double x = ld_f32(a + k * left_col);
            for (Py_ssize_t j = 0; j < 16; j++)
                sg[j] = MULTIPLY_ADD(fused, sg[j], x, bw[k * 16 + j]);
        }
        if (mult != NULL) {
            const double m = mult[i], x = 16.0 * (double)ld_f32(a);
            for (Py_ssize_t j = 0; j < 16; j++)
                sg[j] = MULTIPLY_ADD(fused, sg[j] * m, x, bw[j]);
        }
        char *o = out + i * out_row;
        for (Py_ssize_t j = 0; j < 16; j++)
            st_f32(o + 4 * j, (float)(means != NULL ? sg[j] * unit + means[j] : sg[j] * unit));
    }
}

/* The entries beyond the rank that exact_product's `values` and `terms` hold for
   exact_rows32_avx2, whose packed stores write 8 entries past a row's last term. */
#define ROW_TERMS_SLACK 8

#if FUSED_PRODUCT
/* exact_product's AVX2 copies of exact_rows16 and exact_rows32, with the intrinsics after
   <immintrin.h> below */
FUSED static void exact_rows16_avx2(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                    Py_ssize_t rows, Py_ssize_t rank, const double *bw,
                                    double unit, const double *means, char *out,
                                    Py_ssize_t out_row, const int32_t *mult);
FUSED static void exact_rows32_avx2(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                    Py_ssize_t rows, Py_ssize_t rank, const double *bw,
                                    Py_ssize_t cols, double unit, const double *means,
                                    double *values, Py_ssize_t *terms, char *out,
                                    Py_ssize_t out_row, const int32_t *mult);
#endif

/* The product's rows: patch 4's 16 columns in exact_rows16, multiples of 32 (patch 8's 64,
   patch 16's 256) in exact_rows32, other counts in exact_rows (which takes values, terms,
   sums0 and sums1: see there). */
ALWAYS_INLINE void exact_product_rows(const char *left, Py_ssize_t left_row,
                                      Py_ssize_t left_col, Py_ssize_t rows, Py_ssize_t rank,
                                      const double *bw, Py_ssize_t cols, double unit,
                                      const double *means, double *values, Py_ssize_t *terms,
                                      double *sums0, double *sums1, char *out,
                                      Py_ssize_t out_row, const int32_t *mult, const int fused)
{
    if (cols == 16)
        exact_rows16(left, left_row, left_col, rows, rank, bw, unit, means, out, out_row,
                     mult, fused);
    else if (cols == 64)
        exact_rows32(left, left_row, left_col, rows, rank, bw, 64, unit, means, values, terms,
                     out, out_row, mult, fused);
    else if (cols % 32 == 0)
        exact_rows32(left, left_row, left_col, rows, rank, bw, cols, unit, means, values, terms,
                     out, out_row, mult, fused);
    else
        exact_rows(left, left_row, left_col, rows, rank, bw, cols, unit, means, values, terms,
                   sums0, sums1, out, out_row, mult, fused);
}

/* One compiled copy of exact_product_rows: `attributes` choose the instruction sets it is
   built for, `fused` whether it takes fused multiply-adds (the same bits: see MULTIPLY_ADD). */
#define DEFINE_EXACT_RUN(attributes, name, fused)                                              \
    attributes static void name(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,    \
                                Py_ssize_t rows, Py_ssize_t rank, const double *bw,            \
                                Py_ssize_t cols, double unit, const double *means,             \
                                double *values, Py_ssize_t *terms, double *sums0,              \
                                double *sums1, char *out, Py_ssize_t out_row,                  \
                                const int32_t *mult)                                           \
    {                                                                                          \
        exact_product_rows(left, left_row, left_col, rows, rank, bw, cols, unit, means,        \
                           values, terms, sums0, sums1, out, out_row, mult, fused);            \
    }

DEFINE_EXACT_RUN(HOT_WIDE, exact_run, 0)
#if FUSED_PRODUCT
/* With fused multiply-adds, for CPUs with AVX-512 (FUSED_WIDE: the column counts the AVX2 row
   kernels do not take, where the AVX2 copy ran longer than the AVX-512 clone) and for CPUs
   with AVX2 and FMA. */
DEFINE_EXACT_RUN(FUSED_WIDE, exact_run_fused_wide, 1)
DEFINE_EXACT_RUN(FUSED, exact_run_fused, 1)
#endif

/* max |x| over a float32 matrix of integers (the factor blocks' values: never NaN). Without
   the sign bit, the bits of non-negative floats order as the floats do, so the maximum is one
   of non-negative int32, which vectorizes (a float maximum does not, for NaN's sake); a
   C-contiguous matrix is one run of rows * cols values. */
ALWAYS_INLINE int32_t magnitude_bits(const char *p)
{
    int32_t x;
    memcpy(&x, p, 4);
    return x & 0x7fffffff;
}

HOT static float max_magnitude(const char *data, Py_ssize_t rows, Py_ssize_t cols,
                               Py_ssize_t row_stride, Py_ssize_t col_stride)
{
    int32_t m = 0;
    if (col_stride == 4 && row_stride == 4 * cols) {
        for (Py_ssize_t j = 0, n = rows * cols; j < n; j++) {
            int32_t x = magnitude_bits(data + 4 * j);
            m = x > m ? x : m;
        }
    } else {
        for (Py_ssize_t i = 0; i < rows; i++)
            for (Py_ssize_t j = 0; j < cols; j++) {
                int32_t x = magnitude_bits(data + i * row_stride + j * col_stride);
                m = x > m ? x : m;
            }
    }
    float f;
    memcpy(&f, &m, 4);
    return f;
}

/* The running maxima top[k] of |A[i, k0 + k]| M_ik over a block's rows (binary32 products as
   codec.aq.scaled_left makes them: M_i0 = 16, else M_i), as bits of non-negative floats;
   inlined with width 16 and contiguous columns, where the loop over k vectorizes. */
ALWAYS_INLINE void max_adapted_columns(const char *data, Py_ssize_t rows, Py_ssize_t k0,
                                       Py_ssize_t width, Py_ssize_t row_stride,
                                       Py_ssize_t col_stride, const int32_t *mult,
                                       int32_t *top)
{
    for (Py_ssize_t i = 0; i < rows; i++) {
        const char *row = data + i * row_stride + k0 * col_stride;
        const float row_m = fabsf((float)mult[i]);
        for (Py_ssize_t k = 0; k < width; k++) {
            float a, scaled;
            int32_t bits = magnitude_bits(row + k * col_stride), x;
            memcpy(&a, &bits, 4);
            scaled = a * (k0 + k == 0 ? 16.0f : row_m);
            memcpy(&x, &scaled, 4);
            top[k] = x > top[k] ? x : top[k];
        }
    }
}

/* max |A o M| (spec 5.5) of float32 integers with M per row (mult), compared as
   max_magnitude does, 16 columns at a time. */
HOT static float max_adapted(const char *data, Py_ssize_t rows, Py_ssize_t rank,
                             Py_ssize_t row_stride, Py_ssize_t col_stride, const int32_t *mult)
{
    int32_t m = 0;
    for (Py_ssize_t k0 = 0; k0 < rank; k0 += 16) {
        const Py_ssize_t width = rank - k0 < 16 ? rank - k0 : 16;
        int32_t top[16] = {0};
        if (width == 16 && col_stride == 4)
            max_adapted_columns(data, rows, k0, 16, row_stride, 4, mult, top);
        else
            max_adapted_columns(data, rows, k0, width, row_stride, col_stride, mult, top);
        for (Py_ssize_t k = 0; k < width; k++)
            m = top[k] > m ? top[k] : m;
    }
    float f;
    memcpy(&f, &m, 4);
    return f;
}

/* exact_product's kernels: 0 the plain loops (exact_run), 1 with fused multiply-adds on CPUs
   with AVX2 and FMA (exact_rows16_avx2, exact_rows32_avx2, exact_run_fused), 2 on AVX-512
   CPUs that have AVX2 and FMA too (the same AVX2 row kernels where they apply, else
   exact_run_fused_wide). best_product is the CPU's, chosen at import; product_level the one
   in use (`product_kernel`: tests compare them). All give the same bits. */
static int best_product, product_level;

PyDoc_STRVAR(product_kernel_doc,
"product_kernel(level=-1) -> int\n\n"
"The kernel of exact_product in use: 0 plain C, 1 AVX2 with FMA (each row's non-zero terms),\n"
"2 on AVX-512 CPUs: level 1's row kernels where they apply (16 columns, multiples of 32),\n"
"an AVX-512 loop for the other column counts (the best the CPU runs, chosen at import).\n"
"level >= 0 chooses another one, at most the best (ValueError otherwise): for tests and\n"
"benchmarks, which compare them; all give the same bits. Process-wide and unlocked: not\n"
"while other threads decode. Returns the level in use before the call.");

static PyObject *product_kernel(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return switch_level(args, kwargs, "|i:product_kernel", &product_level, best_product,
                        "product_kernel: level above what this CPU runs");
}

PyDoc_STRVAR(exact_product_doc,
"exact_product(left, weights, right, shift, means, limit, out, multipliers=None) -> float\n\n"
"codec.exact.exact_product(left, weights, right.T, shift, means) into out (float32,\n"
"C-contiguous, (rows of left, rows of right)): left (rows, rank) and right (columns, rank)\n"
"float32 integers, weights (rank,) and means (columns,) float64, or means None. Returns\n"
"max|left| (exact_rule.magnitude); when it exceeds `limit` (the largest max|left| the\n"
"bound allows with this right and these weights: exact_rule.largest_left) nothing is\n"
"computed and the caller raises. multipliers (rows,) int32: an adapted plane's M per row\n"
"(format version 6, spec 5.5): left's column 0 times 16 and the others times the row's M\n"
"(codec.aq.scaled_left, binary32), the shift F + 4, max|left| that of the scaled rows.");

static PyObject *exact_product(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"left", "weights", "right", "shift", "means", "limit", "out",
                            "multipliers", NULL};
    PyObject *o_left, *o_weights, *o_right, *o_means, *o_out, *o_mult = Py_None,
             *result = NULL;
    Py_ssize_t shift;
    double limit;
    Arr left = {0}, weights = {0}, right = {0}, means = {0}, out = {0}, mult = {0};
    double *bw = NULL, *mean = NULL;
    Py_ssize_t *terms = NULL;
    const int32_t *row_m = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOnOdO|O:exact_product", names, &o_left,
                                     &o_weights, &o_right, &shift, &o_means, &limit, &o_out,
                                     &o_mult))
        return NULL;
    if (get_array(o_left, &left, "left", 2, T_F32, 0) < 0
        || get_array(o_weights, &weights, "weights", 1, T_F64, 0) < 0
        || get_array(o_right, &right, "right", 2, T_F32, 0) < 0
        || (o_means != Py_None && get_array(o_means, &means, "means", 1, T_F64, 0) < 0)
        || get_array(o_out, &out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0
        || (o_mult != Py_None
            && get_array(o_mult, &mult, "multipliers", 1, T_I32, A_CONTIGUOUS) < 0))
        goto done;
    Py_ssize_t rows = left.shape[0], rank = left.shape[1], cols = right.shape[0];
    if (weights.size != rank || right.shape[1] != rank || out.shape[0] != rows
        || out.shape[1] != cols || (o_means != Py_None && means.size != cols)
        || (o_mult != Py_None && mult.size != rows) || shift < 0 || shift > 63) {
        value_error("exact_product: needs left (rows, rank), weights (rank,), right "
                    "(columns, rank), means None or (columns,), out (rows, columns), "
                    "multipliers None or (rows,), 0 <= shift <= 63");
        goto done;
    }
    if (o_mult != Py_None && rank > 0) {
        /* an adapted plane (spec 5.5): A o M applied in the row loop (exact_rows), its bound
           on the binary32 products of codec.aq.scaled_left (exact below 2^24; one at or
           above it stays there, and the limit refuses it) */
        row_m = (const int32_t *)mult.data;
        shift += 4;
    } else if (o_mult != Py_None) {
        shift += 4; /* rank 0: nothing multiplied */
    }
    float max_a;
    Py_BEGIN_ALLOW_THREADS
    max_a = row_m != NULL
        ? max_adapted(left.data, rows, rank, left.strides[0], left.strides[1], row_m)
        : max_magnitude(left.data, rows, rank, left.strides[0], left.strides[1]);
    Py_END_ALLOW_THREADS
    if (!((double)max_a <= limit) || rows == 0 || cols == 0) {
        result = PyFloat_FromDouble(max_a);
        goto done;
    }
    /* bw (rank x cols), the means (cols), two sums of a row (2 x cols) and a row's non-zero
       values (rank, and 8 more for exact_rows32_avx2's packed stores); terms (as many) apart */
    Py_ssize_t n = mul_size(rank + 3, cols);
    n = n < 0 || rank > PY_SSIZE_T_MAX - n - ROW_TERMS_SLACK ? -1 : n + rank + ROW_TERMS_SLACK;
    if (n < 0 || n > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double)
        || !(bw = PyMem_Malloc((size_t)n * sizeof(double)))
        || !(terms = PyMem_Malloc((size_t)(rank + ROW_TERMS_SLACK) * sizeof(Py_ssize_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    double *sums0 = bw + (rank + 1) * cols, *sums1 = sums0 + cols, *values = sums1 + cols;
    if (o_means != Py_None) {
        mean = bw + rank * cols;
        for (Py_ssize_t j = 0; j < cols; j++)
            mean[j] = ld_f64(means.data + j * means.strides[0]);
    }
    /* Exact when the bound holds and max|left| >= 1 (W_k |B| <= sum(W) max|B| < 2^53); with
       max|left| = 0 no term is added. */
    for (Py_ssize_t k = 0; k < rank; k++) {
        double w = ld_f64(weights.data + k * weights.strides[0]);
        for (Py_ssize_t j = 0; j < cols; j++)
            bw[k * cols + j] = w * (double)ld_f32(right.data + j * right.strides[0]
                                                  + k * right.strides[1]);
    }
    double unit = ldexp(1.0, -(int)shift);
    Py_BEGIN_ALLOW_THREADS
#if FUSED_PRODUCT
    /* The AVX2 row kernels on AVX-512 CPUs too, where they apply: they hold a row's sums in
       registers and add its non-zero terms only, which the AVX-512 clone of the plain loops
       does not, and measured faster there (docs/performance.md, "The exact product on AVX-512
       CPUs"); the clone keeps the other column counts (patch 2's 4). */
    if (product_level >= 1 && cols == 16 && rank <= 16)
        exact_rows16_avx2(left.data, left.strides[0], left.strides[1], rows, rank, bw, unit,
                          mean, out.data, out.strides[0], row_m);
    else if (product_level >= 1 && cols % 32 == 0 && rank <= INT32_MAX - ROW_TERMS_SLACK)
        exact_rows32_avx2(left.data, left.strides[0], left.strides[1], rows, rank, bw, cols,
                          unit, mean, values, terms, out.data, out.strides[0], row_m);
    else if (product_level == 2)
        exact_run_fused_wide(left.data, left.strides[0], left.strides[1], rows, rank, bw, cols,
                             unit, mean, values, terms, sums0, sums1, out.data, out.strides[0],
                             row_m);
    else if (product_level == 1)
        exact_run_fused(left.data, left.strides[0], left.strides[1], rows, rank, bw, cols,
                        unit, mean, values, terms, sums0, sums1, out.data, out.strides[0],
                        row_m);
    else
#endif
        exact_run(left.data, left.strides[0], left.strides[1], rows, rank, bw, cols, unit,
                  mean, values, terms, sums0, sums1, out.data, out.strides[0], row_m);
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(max_a);
done:
    PyMem_Free(bw);
    PyMem_Free(terms);
    release(&mult);
    release(&left);
    release(&weights);
    release(&right);
    release(&means);
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: residual rows */

/* Rows of a residual grid with the predictor undone (codec.residual.unpredict_rows): each
   element widened, summed down its column from `column` (vertical, planar), then along its
   row (horizontal, planar); unsigned, so that the int64 sums wrap as numpy's do. Inlined for
   each element type and predictor it is called with. */
ALWAYS_INLINE void residual_rows(const char *base, Py_ssize_t row_stride, Py_ssize_t stride,
                                 int type, int vertical, int horizontal, Py_ssize_t rows,
                                 Py_ssize_t width, uint64_t *column, uint64_t *out)
{
    for (Py_ssize_t y = 0; y < rows; y++) {
        const char *row = base + y * row_stride;
        uint64_t *o = out + y * width;
        if (vertical)
            for (Py_ssize_t x = 0; x < width; x++)
                o[x] = column[x] += (uint64_t)ld_int(row + x * stride, type);
        else
            for (Py_ssize_t x = 0; x < width; x++)
                o[x] = (uint64_t)ld_int(row + x * stride, type);
        if (horizontal) {
            uint64_t run = 0;
            for (Py_ssize_t x = 0; x < width; x++)
                o[x] = run += o[x];
        }
    }
}

/* residual_rows on unpredict_rows' arrays, with constant type and predictor flags */
#define RESIDUAL_ROWS(T, V, H) \
    residual_rows(d.data, d.strides[0], d.strides[1], T, V, H, rows, width, sums, \
                  (uint64_t *)out.data)

PyDoc_STRVAR(unpredict_rows_doc,
"unpredict_rows(d, predictor, column, out) -> None\n\n"
"Rows of a residual grid with its predictor undone, as codec.residual.unpredict_rows:\n"
"out (int64, C-contiguous, d's shape) = d (int8, int16 or int32, rows x width) summed down\n"
"each column from `column` (predictors 2 and 3; int64, width, C-contiguous: the column sums\n"
"of the block's rows before these, updated in place; None for predictors 0 and 1), then\n"
"along each row (predictors 1 and 3); int64 sums wrap. Releases the GIL.");

static PyObject *unpredict_rows(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"d", "predictor", "column", "out", NULL};
    PyObject *o_d, *o_column, *o_out, *result = NULL;
    Py_ssize_t predictor;
    Arr d = {0}, column = {0}, out = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOO:unpredict_rows", names, &o_d,
                                     &predictor, &o_column, &o_out))
        return NULL;
    if (predictor < 0 || predictor > 3) {
        value_error("unpredict_rows: predictor must be 0, 1, 2 or 3");
        return NULL;
    }
    int vertical = predictor == 2 || predictor == 3;
    int horizontal = predictor == 1 || predictor == 3;
    if (get_array(o_d, &d, "d", 2, T_I8 | T_I16 | T_I32, 0) < 0
        || get_array(o_out, &out, "out", 2, T_I64, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    if (vertical && get_array(o_column, &column, "column", 1, T_I64,
                              A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t rows = d.shape[0], width = d.shape[1];
    if (out.shape[0] != rows || out.shape[1] != width || (vertical && column.shape[0] != width)) {
        value_error("unpredict_rows: sizes do not match the arrays");
        goto done;
    }
    uint64_t *sums = vertical ? (uint64_t *)column.data : NULL;
    Py_BEGIN_ALLOW_THREADS
    /* the usual types and predictors (planar, horizontal) in loops of their own */
    if (d.type == T_I8 && vertical && horizontal)
        RESIDUAL_ROWS(T_I8, 1, 1);
    else if (d.type == T_I8 && horizontal)
        RESIDUAL_ROWS(T_I8, 0, 1);
    else if (d.type == T_I16 && vertical && horizontal)
        RESIDUAL_ROWS(T_I16, 1, 1);
    else if (d.type == T_I16 && horizontal)
        RESIDUAL_ROWS(T_I16, 0, 1);
    else
        RESIDUAL_ROWS(d.type, vertical, horizontal);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    release(&d);
    release(&column);
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: dense */

/* One component's grid of a dense block: coding.unpredict's prefix sums (vertical, then
   horizontal; unsigned, so that int64 sums wrap as numpy's do), cast to float32 and scaled,
   stored down a column of out. Inlined for each residual type and predictor it is called with. */
ALWAYS_INLINE void unpredict_grid(const char *base, Py_ssize_t stride, int type, int vertical,
                                  int horizontal, Py_ssize_t gh, Py_ssize_t gw,
                                  uint64_t *column, char *dst, Py_ssize_t out_stride, float s)
{
    for (Py_ssize_t gy = 0; gy < gh; gy++) {
        uint64_t run = 0;
        const char *row = base + gy * gw * stride;
        for (Py_ssize_t gx = 0; gx < gw; gx++) {
            uint64_t value = (uint64_t)ld_int(row + gx * stride, type);
            if (vertical)
                value = column[gx] += value;
            if (horizontal)
                value = run += value;
            st_f32(dst + (gy * gw + gx) * out_stride, (float)(int64_t)value * s);
        }
    }
}

/* One component's grid (unpredict_grid), the usual residual types and predictors in loops
   of their own (the same arithmetic): unpredict_into's and plane_factors' dense blocks. */
static void unpredict_component(const char *base, Py_ssize_t stride, int type, int vertical,
                                int horizontal, Py_ssize_t gh, Py_ssize_t gw, uint64_t *column,
                                char *dst, Py_ssize_t out_stride, float s)
{
    if (type == T_I16 && vertical && horizontal)
        unpredict_grid(base, stride, T_I16, 1, 1, gh, gw, column, dst, out_stride, s);
    else if (type == T_I8 && vertical && horizontal)
        unpredict_grid(base, stride, T_I8, 1, 1, gh, gw, column, dst, out_stride, s);
    else if (type == T_I16)
        unpredict_grid(base, stride, T_I16, vertical, horizontal, gh, gw, column, dst,
                       out_stride, s);
    else if (type == T_I8)
        unpredict_grid(base, stride, T_I8, vertical, horizontal, gh, gw, column, dst,
                       out_stride, s);
    else
        unpredict_grid(base, stride, type, vertical, horizontal, gh, gw, column, dst,
                       out_stride, s);
}

PyDoc_STRVAR(unpredict_into_doc,
"unpredict_into(residuals, gh, gw, predictor, width, out, at, scale) -> None\n\n"
"out[gy * gw + gx, at + k] = float32(component k at grid (gy, gx)) * scale[k] for\n"
"k < width, from a dense block's residuals (count * gh * gw, component-major):\n"
"coding.unpredict (int64 prefix sums, wrapping alike) and the scaling of\n"
"PlaneReconstructor._dense_whole in one pass.\n"
"column (integers, width * gw, component-major; or None: zeros): the vertical predictors'\n"
"column sums of the residuals of the grid rows before these, so that a range of grid\n"
"rows unpredicts alone (`residuals` then holds those rows of each component).");

static PyObject *unpredict_into(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"residuals", "gh", "gw", "predictor", "width", "out", "at",
                            "scale", "column", NULL};
    PyObject *o_res, *o_out, *o_scale, *o_column = Py_None, *result = NULL;
    Py_ssize_t gh, gw, predictor, width, at;
    Arr res = {0}, out = {0}, scale = {0}, start = {0};
    uint64_t *column = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnnnOnO|O:unpredict_into", names, &o_res,
                                     &gh, &gw, &predictor, &width, &o_out, &at, &o_scale,
                                     &o_column))
        return NULL;
    if (get_array(o_res, &res, "residuals", 1, T_INTS, 0) < 0
        || get_array(o_out, &out, "out", 2, T_F32, A_WRITABLE) < 0
        || get_array(o_scale, &scale, "scale", 1, T_F32, 0) < 0
        || (o_column != Py_None && get_array(o_column, &start, "column", 1, T_SIGNED, 0) < 0))
        goto done;
    Py_ssize_t cells = mul_size(gh, gw), needed = mul_size(cells, width);
    Py_ssize_t sums = mul_size(gw, width);
    if (cells < 0 || needed < 0 || needed > res.size || at < 0 || out.shape[0] < cells
        || at > out.shape[1] || width > out.shape[1] - at || scale.size < width
        || sums < 0 || (o_column != Py_None && start.size < sums)) {
        value_error("unpredict_into: sizes do not match the arrays");
        goto done;
    }
    column = malloc(sizeof(*column) * (size_t)(gw > 0 ? gw : 1));
    if (column == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int vertical = predictor == 2 || predictor == 3;
    int horizontal = predictor == 1 || predictor == 3;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < width; k++) {
        const char *base = res.data + k * cells * res.strides[0];
        float s = ld_f32(scale.data + k * scale.strides[0]);
        char *dst = out.data + (at + k) * out.strides[1];
        if (o_column == Py_None)
            memset(column, 0, sizeof(*column) * (size_t)gw);
        else
            for (Py_ssize_t gx = 0; gx < gw; gx++)
                column[gx] = (uint64_t)ld_int(start.data + (k * gw + gx) * start.strides[0],
                                             start.type);
        unpredict_component(base, res.strides[0], res.type, vertical, horizontal, gh, gw,
                            column, dst, out.strides[0], s);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(column);
    release(&res);
    release(&out);
    release(&scale);
    release(&start);
    return result;
}

/* ------------------------------------------------------------- decoding: a plane's factors */

/* One block of a factor as plane_factors takes it: components [first, first + width) of
   `count`, dense (predictor 0..3, one residual array of count grids) or sparse (predictor
   -1: symbols, run escapes, value escapes). */
typedef struct {
    Py_ssize_t first, width, count;
    int predictor;
    Arr arrays[3];
} FactorBlock;

/* A factor's matrix rows (gh * gw of them) into out (rows, rank: C-contiguous float32), the
   integers themselves (an exact plane's scale is one): what PlaneReconstructor fills for a
   whole band from the same blocks (sparse_streams' checks, then fill_sparse; unpredict_whole),
   in block order. ones: rank floats of 1. partial: the blocks' columns alone are written
   (another call writes the others), as where the blocks cover every column: no other column
   is zeroed. Returns 0, or an error code (kernels.SPARSE_ERRORS, PLANE_DENSE_SIZE for a dense
   block of the wrong size) and the failing block in *failed. */
#define PLANE_DENSE_SIZE 6
static int plane_factor_run(FactorBlock *blocks, Py_ssize_t count, Py_ssize_t gh,
                            Py_ssize_t gw, char *out, Py_ssize_t rank, const float *ones,
                            int partial, Py_ssize_t *failed)
{
    const Py_ssize_t rows = gh * gw; /* checked against out's rows by the caller */
    Py_ssize_t end = 0;
    int covered = 1;
    for (Py_ssize_t b = 0; b < count; b++) { /* the blocks cover [0, rank) one after another */
        covered &= blocks[b].first == end;
        end = blocks[b].first + blocks[b].width;
    }
    covered = partial || (covered && end == rank);
    if (!covered) /* else every row's columns are written by a block (or another call) */
        memset(out, 0, (size_t)rows * (size_t)rank * 4);
    for (Py_ssize_t b = 0; b < count; b++) {
        FactorBlock *k = &blocks[b];
        *failed = b;
        if (k->predictor < 0) {
            const Arr *sym = &k->arrays[0], *xrun = &k->arrays[1], *xval = &k->arrays[2];
            /* one checkpoint past the last row: only the checks (row ends, side streams) */
            int64_t start = 0, runs = 0, values = 0;
            int error = index_sparse_run(sym->data, sym->strides[0], sym->size, rows,
                                         xrun->size, xval->size, (int64_t)rows + 1, &start,
                                         &runs, &values);
            if (error)
                return error;
            SparseFill f = {
                sym->data, sym->size, sym->strides[0],
                xrun->data, xrun->size, xrun->strides[0], xrun->type,
                xval->data, xval->size, xval->strides[0], xval->type,
                0, 0, 0, 0, 0, rows,
                out, rank * 4, 4,
                k->first, k->width, k->count,
                (const char *)ones, 4, covered,
                NULL, 0, 0, 0,
            };
            error = fill_sparse_run(&f);
            if (error)
                return error;
            continue;
        }
        const Arr *res = &k->arrays[0];
        if (mul_size(k->count, rows) != res->size)
            return PLANE_DENSE_SIZE;
        const int vertical = k->predictor == 2 || k->predictor == 3;
        const int horizontal = k->predictor == 1 || k->predictor == 3;
        uint64_t *column = malloc(sizeof(*column) * (size_t)(gw > 0 ? gw : 1));
        if (column == NULL)
            return -1;
        for (Py_ssize_t c = 0; c < k->width; c++) {
            const char *base = res->data + c * rows * res->strides[0];
            char *dst = out + (k->first + c) * 4;
            memset(column, 0, sizeof(*column) * (size_t)gw);
            unpredict_component(base, res->strides[0], res->type, vertical, horizontal, gh, gw,
                                column, dst, rank * 4, 1.0f);
        }
        free(column);
    }
    return 0;
}

/* blocks (a sequence of (first, width, count, predictor, arrays)) into n FactorBlocks, each
   checked against rank; -1 with an exception set on failure (the arrays taken so far, in
   blocks[0 .. *taken), are released by the caller). */
static int plane_blocks_get(PyObject *seq, FactorBlock *blocks, Py_ssize_t n, Py_ssize_t rank,
                            Py_ssize_t *taken)
{
    for (Py_ssize_t b = 0; b < n; b++) {
        FactorBlock *k = &blocks[b];
        PyObject *entry = PySequence_Fast_GET_ITEM(seq, b), *arrays;
        memset(k, 0, sizeof(*k));
        *taken = b + 1;
        if (!PyTuple_Check(entry)) { /* PyArg_ParseTuple takes only a tuple */
            PyErr_SetString(PyExc_TypeError, "plane_factors: each block must be a tuple");
            return -1;
        }
        if (!PyArg_ParseTuple(entry, "nnniO:plane_factors block", &k->first, &k->width,
                              &k->count, &k->predictor, &arrays))
            return -1;
        if (k->first < 0 || k->width < 0 || k->width > k->count || k->first > rank
            || k->width > rank - k->first || k->count > ((Py_ssize_t)1 << 32)
            || k->predictor < -1 || k->predictor > 3 || !PyTuple_Check(arrays)
            || PyTuple_GET_SIZE(arrays) != (k->predictor < 0 ? 3 : 1))
            return value_error("plane_factors: a block needs 0 <= first, 0 <= width <= count "
                               "<= 2^32, first + width <= rank, -1 <= predictor <= 3 and "
                               "its arrays (three sparse, one dense)");
        if (k->predictor < 0) {
            if (get_array(PyTuple_GET_ITEM(arrays, 0), &k->arrays[0], "symbols", 1, T_U8, 0) < 0
                || get_array(PyTuple_GET_ITEM(arrays, 1), &k->arrays[1], "xrun", 1, T_INTS32,
                             0) < 0
                || get_array(PyTuple_GET_ITEM(arrays, 2), &k->arrays[2], "xval", 1, T_INTS, 0)
                   < 0)
                return -1;
        } else if (get_array(PyTuple_GET_ITEM(arrays, 0), &k->arrays[0], "residuals", 1, T_INTS,
                             A_FLAT) < 0) {
            return -1;
        }
    }
    return 0;
}

/* What plane_factors and whole_factor check and hold alike: `out` (gh * gw rows of C-contiguous,
   writable float32), the blocks as a sequence (*seq), and *ones, the fill's rank unit weights.
   0, or -1 with an exception set; the caller releases what was taken either way. */
static int factor_target(PyObject *o_out, PyObject *o_blocks, Py_ssize_t gh, Py_ssize_t gw,
                         const char *not_a_sequence, const char *wrong_rows, Arr *out,
                         PyObject **seq, float **ones)
{
    if (get_array(o_out, out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0
        || !(*seq = PySequence_Fast(o_blocks, not_a_sequence)))
        return -1;
    Py_ssize_t rows = mul_size(gh, gw), rank = out->shape[1];
    if (rows < 0 || rows != out->shape[0])
        return value_error(wrong_rows);
    *ones = PyMem_Malloc(sizeof(**ones) * (size_t)(rank ? rank : 1));
    if (*ones == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < rank; k++)
        (*ones)[k] = 1.0f;
    return 0;
}

/* plane_factor_run into `out` (as factor_target checked it) without the GIL, and max|out| into
   *top where `magnitude` is set and the fill succeeded; plane_factor_run's value. */
static int factor_fill(FactorBlock *blocks, Py_ssize_t count, Py_ssize_t gh, Py_ssize_t gw,
                       const Arr *out, const float *ones, int magnitude, int partial,
                       Py_ssize_t *failed, float *top)
{
    const Py_ssize_t rows = out->shape[0], rank = out->shape[1];
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = plane_factor_run(blocks, count, gh, gw, out->data, rank, ones, partial, failed);
    if (error == 0 && magnitude)
        *top = max_magnitude(out->data, rows, rank, rank * 4, 4);
    Py_END_ALLOW_THREADS
    return error;
}

PyDoc_STRVAR(plane_factors_doc,
"plane_factors(blocks, gh, gw, out, magnitude=False) -> (error, block, max|out|)\n\n"
"A factor of an exact plane whole, from its blocks: out (gh * gw, rank), C-contiguous\n"
"float32, gets every matrix row's integers (components the blocks do not cover are 0).\n"
"blocks: (first, width, count, predictor, arrays) each, in the file's order: components\n"
"[first, first + width) of the block's count; predictor -1 and arrays (symbols, xrun, xval)\n"
"for a run/level block, checked as decoder.factors.sparse_streams checks it and filled as\n"
"fill_sparse fills it; else the dense block's predictor and (residuals,), count grids of\n"
"gh x gw, unpredicted as unpredict_into does. Returns 0, or an error code\n"
"(kernels.SPARSE_ERRORS, 6 for a dense block of another size) and the index of the block\n"
"that has it; and max|out| (exact_rule.magnitude) where magnitude is true, else 0.");

static PyObject *plane_factors(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"blocks", "gh", "gw", "out", "magnitude", NULL};
    PyObject *o_blocks, *o_out, *seq = NULL, *result = NULL;
    Py_ssize_t gh, gw, n = 0, taken = 0, failed = -1;
    int magnitude = 0;
    Arr out = {0};
    FactorBlock *blocks = NULL;
    float *ones = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnO|p:plane_factors", names, &o_blocks,
                                     &gh, &gw, &o_out, &magnitude))
        return NULL;
    if (factor_target(o_out, o_blocks, gh, gw, "plane_factors: blocks must be a sequence",
                      "plane_factors: out must have gh * gw rows", &out, &seq, &ones) < 0)
        goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    blocks = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*blocks));
    if (blocks == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (plane_blocks_get(seq, blocks, n, out.shape[1], &taken) < 0)
        goto done;
    float top = 0.0f;
    int error = factor_fill(blocks, n, gh, gw, &out, ones, magnitude, 0, &failed, &top);
    if (error < 0)
        PyErr_NoMemory();
    else
        result = Py_BuildValue("(ind)", error, error ? failed : -1, (double)top);
done:
    for (Py_ssize_t b = 0; b < taken; b++)
        for (int j = 0; j < 3; j++)
            release(&blocks[b].arrays[j]);
    PyMem_Free(blocks);
    PyMem_Free(ones);
    Py_XDECREF(seq);
    release(&out);
    return result;
}

/* ------------------------------------------------ decoding: a plane's factors from its blocks */

/* What whole_factor and factor_bytes read of a format.blocks.Block, by attribute. */
static PyObject *s_first, *s_count, *s_coding, *s_predictor, *s_arrays, *s_frame, *s_form,
    *s_nbytes, *s_parts, *s_plane, *s_factor, *s_decompress, *s_str, *kw_max_output;

static int block_names(void)
{
    if (s_first != NULL)
        return 0;
    return (s_first = PyUnicode_InternFromString("first")) && (s_count =
        PyUnicode_InternFromString("count")) && (s_coding = PyUnicode_InternFromString("coding"))
        && (s_predictor = PyUnicode_InternFromString("predictor"))
        && (s_arrays = PyUnicode_InternFromString("arrays"))
        && (s_frame = PyUnicode_InternFromString("frame"))
        && (s_form = PyUnicode_InternFromString("form"))
        && (s_nbytes = PyUnicode_InternFromString("nbytes"))
        && (s_parts = PyUnicode_InternFromString("parts"))
        && (s_plane = PyUnicode_InternFromString("plane"))
        && (s_factor = PyUnicode_InternFromString("factor"))
        && (s_decompress = PyUnicode_InternFromString("decompress"))
        && (s_str = PyUnicode_InternFromString("str"))
        && (kw_max_output = Py_BuildValue("(s)", "max_output_size")) ? 0 : -1;
}

/* An integer attribute of a block into *value: 1 if it is an int that fits, 0 if it is not
   (the block is not one this kernel takes), -1 with an exception set. */
static int block_int(PyObject *block, PyObject *name, Py_ssize_t *value)
{
    PyObject *o = PyObject_GetAttr(block, name);
    if (o == NULL)
        return -1;
    int taken = 0;
    if (PyLong_CheckExact(o)) {
        *value = PyLong_AsSsize_t(o);
        taken = !(*value == -1 && PyErr_Occurred());
        PyErr_Clear(); /* an int beyond Py_ssize_t is not taken */
    }
    Py_DECREF(o);
    return taken;
}

/* The T_ flag of a numpy dtype of the elements a block's frame holds (little-endian integers
   of 1, 2 or 4 bytes, from its `str`: "|i1", "<i2", "<u2" ...) and its itemsize, or 0 for any
   other dtype; -1 with an exception set. */
static int dtype_type(PyObject *dtype, Py_ssize_t *itemsize)
{
    PyObject *o = PyObject_GetAttr(dtype, s_str);
    if (o == NULL)
        return -1;
    const char *t = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    int type = 0;
    if (t == NULL)
        PyErr_Clear();
    else if (strlen(t) == 3 && (t[0] == '|' || (PY_LITTLE_ENDIAN && t[0] == '<'))
             && (t[1] == 'i' || t[1] == 'u') && (t[2] == '1' || t[2] == '2' || t[2] == '4')) {
        *itemsize = t[2] - '0';
        type = t[1] == 'i' ? (*itemsize == 1 ? T_I8 : *itemsize == 2 ? T_I16 : T_I32)
                           : (*itemsize == 1 ? T_U8 : *itemsize == 2 ? T_U16 : T_U32);
    }
    Py_DECREF(o);
    return type;
}

/* factor_bytes' and whole_factor's verdict on a block: a lazily read one (`arrays` None, a
   frame, `nbytes` >= 0), or not (0). */
static int lazy_block(PyObject *block, Py_ssize_t *first, Py_ssize_t *nbytes)
{
    int got = block_int(block, s_first, first);
    if (got <= 0)
        return got;
    got = block_int(block, s_nbytes, nbytes);
    if (got <= 0)
        return got;
    PyObject *arrays = PyObject_GetAttr(block, s_arrays);
    if (arrays == NULL)
        return -1;
    Py_DECREF(arrays);
    return arrays == Py_None && *nbytes >= 0 && *first >= 0;
}

PyDoc_STRVAR(factor_bytes_doc,
"factor_bytes(u_blocks, v_blocks, rank) -> int\n\n"
"Bytes of the decompressed arrays of the blocks (format.blocks.Block) of either sequence\n"
"whose first component is below rank: what a WholePlane holds of them (Block.raw_bytes);\n"
"-1 where a block is not one the reader left compressed (its arrays held, or no nbytes).");

static PyObject *factor_bytes(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"u_blocks", "v_blocks", "rank", NULL};
    PyObject *lists[2], *seq = NULL;
    Py_ssize_t rank, held = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOn:factor_bytes", names, &lists[0],
                                     &lists[1], &rank) || block_names() < 0)
        return NULL;
    for (int j = 0; j < 2; j++) {
        if (!(seq = PySequence_Fast(lists[j], "factor_bytes: blocks must be a sequence")))
            return NULL;
        for (Py_ssize_t b = 0; b < PySequence_Fast_GET_SIZE(seq); b++) {
            Py_ssize_t first, nbytes;
            int lazy = lazy_block(PySequence_Fast_GET_ITEM(seq, b), &first, &nbytes);
            if (lazy <= 0) {
                Py_DECREF(seq);
                return lazy < 0 ? NULL : PyLong_FromLong(-1);
            }
            if (first < rank)
                held = nbytes > PY_SSIZE_T_MAX - held ? PY_SSIZE_T_MAX : held + nbytes;
        }
        Py_CLEAR(seq);
    }
    return PyLong_FromSsize_t(held);
}

/* One block of whole_factor: its FactorBlock, and what its arrays' memory belongs to (the
   decompressed bytes, or the frame's buffer for a stored block). */
typedef struct {
    PyObject *raw;
    Py_buffer frame;
    int held;
} HeldBlock;

static void held_release(HeldBlock *h)
{
    Py_CLEAR(h->raw);
    if (h->held) {
        PyBuffer_Release(&h->frame);
        h->held = 0;
    }
}

/* The content of a block's frame of `form` that the reader checked (its size declared as
   nbytes): decompressed by decompressors[form] (a zstd decompressor; None: stored, the frame's
   bytes are its content) into h, whose memory *content and *length then point to. 1 if it
   gives exactly nbytes; 0 if not (no decompressor for the form, zstd's error or MemoryError,
   another size: the Python reader then reads the block and raises its error); -1 with an
   exception set (not an Exception: KeyboardInterrupt ...). h is released by the caller. */
static int block_content(PyObject *frame, PyObject *form, Py_ssize_t nbytes,
                         PyObject *decompressors, HeldBlock *h, const char **content,
                         Py_ssize_t *length)
{
    PyObject *zstd = PyUnicode_Check(form) ? PyDict_GetItemWithError(decompressors, form) : NULL;
    if (zstd == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (zstd == Py_None) { /* a stored block: the frame's bytes are its content */
        if (PyObject_GetBuffer(frame, &h->frame, PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear();
            return 0;
        }
        h->held = 1;
        *content = h->frame.buf;
        *length = h->frame.len;
        return *length == nbytes;
    }
    PyObject *size = PyLong_FromSsize_t(nbytes > 1 ? nbytes : 1);
    if (size == NULL)
        return -1;
    PyObject *call[3] = {zstd, frame, size};
    h->raw = PyObject_VectorcallMethod(s_decompress, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                       kw_max_output);
    Py_DECREF(size);
    if (h->raw == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear(); /* zstd's error, MemoryError */
        return 0;
    }
    if (!PyBytes_CheckExact(h->raw))
        return 0;
    *content = PyBytes_AS_STRING(h->raw);
    *length = PyBytes_GET_SIZE(h->raw);
    return *length == nbytes;
}

/* Decompressed content of a lazily read block into h and its arrays into k: 1 if taken, 0 if
   this kernel does not take the block (any failure to decompress it to exactly nbytes, a
   field or part of another kind or size), -1 with an exception set. The parts are checked
   against the content's length here: a frame's bytes are file data. h is released here
   unless the block is taken. */
static int whole_block(PyObject *block, Py_ssize_t rank, PyObject *decompressors,
                       FactorBlock *k, HeldBlock *h)
{
    Py_ssize_t first, nbytes, count, coding, predictor;
    int got = lazy_block(block, &first, &nbytes);
    if (got > 0)
        got = block_int(block, s_count, &count);
    if (got > 0)
        got = block_int(block, s_coding, &coding);
    if (got > 0)
        got = block_int(block, s_predictor, &predictor);
    if (got <= 0)
        return got;
    if (count < 1 || count > ((Py_ssize_t)1 << 32) || first >= rank || (coding != 0 && coding != 1)
        || (coding == 0 && (predictor < 0 || predictor > 3)) || (coding == 1 && predictor != 0))
        return 0;
    k->first = first;
    k->count = count;
    k->width = count < rank - first ? count : rank - first;
    k->predictor = coding == 1 ? -1 : (int)predictor;
    PyObject *frame = NULL, *form = NULL, *parts = NULL;
    int taken = -1;
    if (!(frame = PyObject_GetAttr(block, s_frame)) || !(form = PyObject_GetAttr(block, s_form))
        || !(parts = PyObject_GetAttr(block, s_parts)))
        goto done;
    const char *content = NULL;
    Py_ssize_t length = 0;
    taken = block_content(frame, form, nbytes, decompressors, h, &content, &length);
    if (taken <= 0)
        goto done;
    taken = 0;
    if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != (k->predictor < 0 ? 3 : 1))
        goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts); j++) {
        PyObject *part = PyTuple_GET_ITEM(parts, j), *shape;
        Py_ssize_t itemsize = 0, elements = 1;
        if (!PyTuple_Check(part) || PyTuple_GET_SIZE(part) != 2
            || !PyTuple_Check(shape = PyTuple_GET_ITEM(part, 1)))
            goto done;
        int type = dtype_type(PyTuple_GET_ITEM(part, 0), &itemsize);
        if (type < 0) {
            taken = -1;
            goto done;
        }
        /* the arrays plane_factors takes: u8 symbols, run escapes of up to 32 bits, signed
           residuals or value escapes */
        int allowed = k->predictor >= 0 ? T_SIGNED : j == 0 ? T_U8 : j == 1 ? T_INTS32
                                                                         : T_SIGNED;
        if (!(type & allowed))
            goto done;
        for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(shape); d++) {
            PyObject *dim = PyTuple_GET_ITEM(shape, d);
            Py_ssize_t n = PyLong_CheckExact(dim) ? PyLong_AsSsize_t(dim) : -1;
            if (n == -1 && PyErr_Occurred())
                PyErr_Clear();
            elements = mul_size(elements, n);
            if (elements < 0)
                goto done;
        }
        Py_ssize_t bytes = mul_size(elements, itemsize);
        if (bytes < 0 || bytes > length - at)
            goto done;
        Arr *a = &k->arrays[j];
        a->data = (char *)content + at;
        a->ndim = 1;
        a->size = a->shape[0] = elements;
        a->strides[0] = itemsize;
        a->type = type;
        at += bytes;
    }
    taken = at == length;
done:
    if (taken != 1)
        held_release(h);
    Py_XDECREF(frame);
    Py_XDECREF(form);
    Py_XDECREF(parts);
    return taken;
}

PyDoc_STRVAR(whole_factor_doc,
"whole_factor(blocks, gh, gw, out, decompressors, magnitude=False, partial=False)\n"
"    -> (status, max|out|)\n\n"
"plane_factors of a factor's blocks as the reader leaves them (format.blocks.Block, their\n"
"frames compressed): the blocks whose first component is below rank (out's columns) are\n"
"decompressed (decompressors: the block's form -> a zstd decompressor, or None for a stored\n"
"block), their content checked against their parts, and filled into out (gh * gw, rank),\n"
"C-contiguous float32, as plane_factors fills the same arrays. status 0: filled, and\n"
"max|out| where magnitude is true (else 0); 1: not filled here (a block this kernel does\n"
"not take, a frame that does not decompress to its size, or streams that plane_factors\n"
"refuses): the caller reads the blocks the general way, which raises the error.\n"
"partial: the blocks' columns of out alone are written (another call, which may run at the\n"
"same time, writes the others: the two sets of blocks together cover every column); no\n"
"max|out|.");

static PyObject *whole_factor(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"blocks", "gh", "gw", "out", "decompressors", "magnitude",
                            "partial", NULL};
    PyObject *o_blocks, *o_out, *decompressors, *seq = NULL, *result = NULL;
    Py_ssize_t gh, gw, n = 0, used = 0, failed = -1;
    int magnitude = 0, partial = 0, status = 1;
    Arr out = {0};
    FactorBlock *blocks = NULL;
    HeldBlock *held = NULL;
    float *ones = NULL, top = 0.0f;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnOO!|pp:whole_factor", names, &o_blocks,
                                     &gh, &gw, &o_out, &PyDict_Type, &decompressors, &magnitude,
                                     &partial)
        || block_names() < 0)
        return NULL;
    if (factor_target(o_out, o_blocks, gh, gw, "whole_factor: blocks must be a sequence",
                      "whole_factor: out must have gh * gw rows", &out, &seq, &ones) < 0)
        goto done;
    Py_ssize_t rank = out.shape[1];
    n = PySequence_Fast_GET_SIZE(seq);
    blocks = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*blocks));
    held = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*held));
    if (blocks == NULL || held == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t b = 0; b < n; b++) {
        PyObject *block = PySequence_Fast_GET_ITEM(seq, b);
        Py_ssize_t first;
        int got = block_int(block, s_first, &first);
        if (got > 0 && first >= rank) /* beyond a preview's rank: not read */
            continue;
        if (got > 0)
            got = whole_block(block, rank, decompressors, &blocks[used], &held[used]);
        used += got > 0;
        if (got < 0)
            goto done;
        if (got == 0)
            goto verdict;
    }
    int error = factor_fill(blocks, used, gh, gw, &out, ones, magnitude && !partial, partial,
                            &failed, &top);
    if (error < 0) {
        PyErr_NoMemory();
        goto done;
    }
    status = error != 0;
verdict:
    result = Py_BuildValue("(id)", status, status ? 0.0 : (double)top);
done:
    for (Py_ssize_t b = 0; b < used; b++)
        held_release(&held[b]);
    PyMem_Free(blocks);
    PyMem_Free(held);
    PyMem_Free(ones);
    Py_XDECREF(seq);
    release(&out);
    return result;
}

/* ------------------------------------------------------------ reading: records of a small file */

PyDoc_STRVAR(factor_index_doc,
"factor_index(blocks) -> dict\n\n"
"format.blocks.Container's index of its blocks: (plane, factor) -> the blocks of that plane\n"
"and factor in the order of `blocks` (Container.factor_blocks).");

static PyObject *factor_index(PyObject *self, PyObject *o_blocks)
{
    if (block_names() < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(o_blocks, "factor_index: blocks must be a sequence");
    if (seq == NULL)
        return NULL;
    PyObject *index = PyDict_New();
    for (Py_ssize_t b = 0; index != NULL && b < PySequence_Fast_GET_SIZE(seq); b++) {
        PyObject *block = PySequence_Fast_GET_ITEM(seq, b), *key = NULL, *list;
        PyObject *plane = PyObject_GetAttr(block, s_plane), *factor = NULL;
        int ok = plane != NULL && (factor = PyObject_GetAttr(block, s_factor)) != NULL
                 && (key = PyTuple_Pack(2, plane, factor)) != NULL;
        Py_XDECREF(plane);
        Py_XDECREF(factor);
        if (ok) {
            list = PyDict_GetItemWithError(index, key);
            if (list == NULL && !PyErr_Occurred()) {
                list = PyList_New(0);
                ok = list != NULL && PyDict_SetItem(index, key, list) == 0;
                Py_XDECREF(list); /* the index holds it */
            }
            ok = ok && list != NULL && PyList_Append(list, block) == 0;
        }
        Py_XDECREF(key);
        if (!ok)
            Py_CLEAR(index);
    }
    Py_DECREF(seq);
    return index;
}

/* A big-endian unsigned integer of n bytes at p. */
static uint64_t be_uint(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

PyDoc_STRVAR(parse_plan_doc,
"parse_plan(payload, version, index, height, width, subsampling, sample_type) -> dict | None\n\n"
"The fields of plane `index`'s PLAN chunk (format.records.Plane's, those it derives\n"
"included) where the chunk passes every check of format.reader._parse_plane for an image of\n"
"height x width, this chroma subsampling (planes 1 and 2 halved) and sample type (spec 3,\n"
"5.4, 5.5); None where it does not (the Python parser then says why).");

static PyObject *parse_plan(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"payload", "version", "index", "height", "width", "subsampling",
                         "sample_type", NULL};
    Py_buffer view;
    int version, index, subsampling, sample_type;
    Py_ssize_t height, width;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*iinnii:parse_plan", kw, &view, &version,
                                     &index, &height, &width, &subsampling, &sample_type))
        return NULL;
    /* PLAN_RECORD(_V2, _V4, _V6): >BBBIIId, then F (version 2), the filter's alpha, beta, tc
       (version 4), K and G (version 6) */
    const Py_ssize_t size = version >= 6 ? 30 : version >= 4 ? 27 : version >= 2 ? 24 : 23;
    const uint8_t *p = view.buf;
    PyObject *result = NULL;
    if (view.len != size || version < 1 || height < 1 || width < 1)
        goto refused;
    const int layout = p[1], patch = p[2];
    const int64_t h = (int64_t)be_uint(p + 3, 4), w = (int64_t)be_uint(p + 7, 4),
                  rank = (int64_t)be_uint(p + 11, 4);
    uint64_t bits = be_uint(p + 15, 8);
    double step;
    memcpy(&step, &bits, 8);
    const int shift = version >= 2 ? p[23] : -1;
    const int alpha = version >= 4 ? p[24] : 0, beta = version >= 4 ? p[25] : 0,
              tc = version >= 4 ? p[26] : 0;
    const int aq_k = version >= 6 ? p[27] : 0, aq_g = version >= 6 ? (int)be_uint(p + 28, 2) : 0;
    const int halved = subsampling && (index == 1 || index == 2);
    if (shift > 63 || p[0] != index || h != (halved ? (height + 1) / 2 : height)
        || w != (halved ? (width + 1) / 2 : width))
        goto refused;
    int64_t gh, gw, vgh, vgw;
    if (layout == 1) {
        if (patch != 2 && patch != 4 && patch != 8 && patch != 16 && patch != 32)
            goto refused;
        gh = (h + patch - 1) / patch;
        gw = (w + patch - 1) / patch;
        vgh = vgw = patch;
    } else if (layout == 0 && patch == 0) {
        gh = h;
        gw = 1;
        vgh = w;
        vgw = 1;
    } else {
        goto refused;
    }
    const int64_t m = gh * gw, n = vgh * vgw; /* each below 2^64: sides below 2^32 */
    if (rank > m || rank > n || rank > 4096 || !isfinite(step) || !(step > 0))
        goto refused;
    const int filtered = alpha || beta || tc, adapted = aq_k || aq_g;
    if (filtered && (alpha < 1 || beta < 1 || tc < 1 || layout != 1 || sample_type != 1))
        goto refused;
    if (adapted && (aq_k < 2 || aq_k > 16 || aq_g == 0 || aq_g >= 0x7C00 || layout != 1))
        goto refused;
    PyObject *o_shift = shift < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(shift);
    if (o_shift != NULL)
        result = Py_BuildValue(
            "{s:i,s:i,s:i,s:L,s:L,s:L,s:d,s:N,s:(iii),s:(ii),s:O,s:O,s:O,s:(LL),s:(LL),s:(LL)}",
            "index", index, "layout", layout, "patch", patch, "height", (long long)h,
            "width", (long long)w, "rank", (long long)rank, "step", step, "shift", o_shift,
            "deblock", alpha, beta, tc, "aq", aq_k, aq_g,
            "adapted", aq_k != 0 ? Py_True : Py_False,
            "filtered", filtered ? Py_True : Py_False,
            "exact", shift >= 0 ? Py_True : Py_False, "grid", (long long)gh, (long long)gw,
            "vgrid", (long long)vgh, (long long)vgw, "matrix_shape", (long long)m, (long long)n);
    PyBuffer_Release(&view);
    return result;
refused:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ decoding: colour */

/* out = Pillow's exact 2x bilinear of row a (n float32): 2i is a[i-1]/4 + 3a[i]/4 and 2i+1 is
   3a[i]/4 + a[i+1]/4 (exact products, one rounding), a single sample at the ends. Both
   products are exact in float64 (a float32 times 1/4 or 3/4), so a fused multiply-add
   (`fused`, the FUSED copy) rounds the same sum once: the same bits. */
ALWAYS_INLINE void double_row_body(const char *a, Py_ssize_t n, float *out, const int fused)
{
    if (n == 0)
        return;
    out[0] = ld_f32(a);
    for (Py_ssize_t i = 0; i + 1 < n; i++) {
        double x = ld_f32(a + 4 * i), y = ld_f32(a + 4 * (i + 1));
        out[2 * i + 1] = (float)MULTIPLY_ADD(fused, y * 0.25, x, 0.75);
        out[2 * i + 2] = (float)MULTIPLY_ADD(fused, y * 0.75, x, 0.25);
    }
    out[2 * n - 1] = ld_f32(a + 4 * (n - 1));
}

HOT_WIDE static void double_row(const char *a, Py_ssize_t n, float *out)
{
    double_row_body(a, n, out, 0);
}

/* Pixels from Y' (float32, rounded as store_bytes rounds: Y' read from a uint8 channel comes
   back unchanged) and blue = Cb - 128, red = Cr - 128 (integer-valued float32) to RGB, as
   Pillow converts (spec §5): its tables hold trunc(k * x + 1/2) for x = Cb - 128 or Cr - 128
   (k: codec.colour.YCC_MULTIPLIERS), then R = Y' + (t_R >> 6), G = Y' + ((t_GB + t_GR) >> 6),
   B = Y' + (t_B >> 6), clamped. k is checked to |k| <= 2^16, so each t fits an int. Into
   three planar lines: contiguous stores vectorize, interleaved ones do not. */
HOT_WIDE static void rgb_planes(Py_ssize_t w, const float *RESTRICT luma,
                           const float *RESTRICT blue, const float *RESTRICT red, float k0,
                           float k1, float k2, float k3, uint8_t *RESTRICT r,
                           uint8_t *RESTRICT g, uint8_t *RESTRICT b)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        int y = (int)clamp_f(luma[x] + 0.5f, 0.0f, 255.0f);
        int tr = (int)(k0 * red[x] + 0.5f), tgb = (int)(k1 * blue[x] + 0.5f);
        int tgr = (int)(k2 * red[x] + 0.5f), tb = (int)(k3 * blue[x] + 0.5f);
        r[x] = (uint8_t)clamp_byte(y + (tr >> 6));
        g[x] = (uint8_t)clamp_byte(y + ((tgb + tgr) >> 6));
        b[x] = (uint8_t)clamp_byte(y + (tb >> 6));
    }
}

ALWAYS_INLINE void interleave(uint8_t *RESTRICT row, Py_ssize_t c, Py_ssize_t w,
                              const uint8_t *RESTRICT r, const uint8_t *RESTRICT g,
                              const uint8_t *RESTRICT b)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        row[c * x] = r[x];
        row[c * x + 1] = g[x];
        row[c * x + 2] = b[x];
    }
}

/* RGB and a fourth byte `pad` per pixel, as Pillow lays out an RGB image (RGBX, X = 255). */
ALWAYS_INLINE void interleave_pad(uint8_t *RESTRICT row, Py_ssize_t w, const uint8_t *RESTRICT r,
                                  const uint8_t *RESTRICT g, const uint8_t *RESTRICT b,
                                  uint8_t pad)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* One 32-bit word per pixel (r in its low byte: memory order r, g, b, pad): word
       arithmetic vectorizes where four byte stores per pixel do not. */
    uint32_t top = (uint32_t)pad << 24;
    for (Py_ssize_t x = 0; x < w; x++) {
        uint32_t word = (uint32_t)r[x] | (uint32_t)g[x] << 8 | (uint32_t)b[x] << 16 | top;
        memcpy(row + 4 * x, &word, 4);
    }
#else
    for (Py_ssize_t x = 0; x < w; x++) {
        row[4 * x] = r[x];
        row[4 * x + 1] = g[x];
        row[4 * x + 2] = b[x];
        row[4 * x + 3] = pad;
    }
#endif
}

/* A row of w pixels of c channels written as RGB (`rgb_planes`, through `planar`: 3 * w
   bytes of scratch); with c = 4 and 0 <= pad <= 255, channel 3 becomes pad (else it is left
   as it is). The callers that convert in place copy Y' into `luma` first. */
HOT_WIDE static void rgb_line(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const float *luma,
                     const float *blue, const float *red, const float *k, uint8_t *planar,
                     int pad)
{
    rgb_planes(w, luma, blue, red, k[0], k[1], k[2], k[3], planar, planar + w, planar + 2 * w);
    if (c == 3) /* a stride the compiler knows */
        interleave(row, 3, w, planar, planar + w, planar + 2 * w);
    else if (c == 4 && pad >= 0 && pad <= 255)
        interleave_pad(row, w, planar, planar + w, planar + 2 * w, (uint8_t)pad);
    else if (c == 4) /* RGBA: the alpha byte kept */
        interleave(row, 4, w, planar, planar + w, planar + 2 * w);
    else
        interleave(row, c, w, planar, planar + w, planar + 2 * w);
}

/* luma = channel 0 of a row of w pixels of c channels, as float32. */
HOT static void luma_line(const uint8_t *RESTRICT row, Py_ssize_t c, Py_ssize_t w,
                          float *RESTRICT luma)
{
    for (Py_ssize_t x = 0; x < w; x++)
        luma[x] = row[c * x];
}

/* Cb and Cr rows doubled to width w on demand, two rows of each at a time: output row y
   blends chroma rows i - 1 and i or i and i + 1 (i = y / 2), consecutive rows, which take the
   two slots (row % 2) without evicting each other, and the rows only ever move down, so each
   chroma row is doubled once per call. A few lines of scratch instead of a band's worth of
   doubled rows: no pages to fault in on every call. */
typedef struct {
    float *wide; /* [2 slots][Cb, Cr][w] */
    Py_ssize_t tag[2]; /* the chroma row each slot holds, -1 for none */
    const char *cb, *cr;
    /* rows [split, first + rows) are in a second pair of arrays (NULL: none), so that an
       output band whose chroma rows lie in two bands of the plane reads them where they are */
    const char *cb2, *cr2;
    Py_ssize_t row_bytes, cw, ph, w;
    Py_ssize_t first, rows; /* the chroma plane's rows the arrays hold: [first, first + rows) */
    Py_ssize_t split;
    int fused; /* the FUSED copies of double_row and chroma_line (fused_colour) */
} WideChroma;

#if FUSED_PRODUCT
FUSED static void double_row_fused(const char *a, Py_ssize_t n, float *out)
{
    double_row_body(a, n, out, 1);
}

/* Whether the colour output takes its FUSED copies: on CPUs with AVX2 and FMA but without
   AVX-512, whose HOT_WIDE clones (no FMA) took less time than the fused AVX2 ones
   (docs/performance.md). Set once, by the module's initialization. */
static int fused_colour;
#else
#define double_row_fused double_row
#endif

/* The doubled Cb row of chroma row i (first <= i < first + rows, checked by the caller), its
   Cr row w floats after it. */
static const float *wide_row(WideChroma *wc, Py_ssize_t i)
{
    float *slot = wc->wide + (i & 1) * 2 * wc->w;
    if (wc->tag[i & 1] != i) {
        const char *cb = wc->cb, *cr = wc->cr;
        Py_ssize_t at = (i - wc->first) * wc->row_bytes;
        if (i >= wc->split) {
            cb = wc->cb2, cr = wc->cr2;
            at = (i - wc->split) * wc->row_bytes;
        }
        if (wc->fused) {
            double_row_fused(cb + at, wc->cw, slot);
            double_row_fused(cr + at, wc->cw, slot + wc->w);
        } else {
            double_row(cb + at, wc->cw, slot);
            double_row(cr + at, wc->cw, slot + wc->w);
        }
        wc->tag[i & 1] = i;
    }
    return slot;
}

/* The vertical blend of output row y: the doubled rows above (*b0) and below (*b1), Cr w
   floats after each, and their weights wt and wb; -1 if a row it needs is outside the chroma
   rows given (not reached: get_chroma checked them). */
static int blend_rows(WideChroma *wc, Py_ssize_t y, const float **b0, const float **b1,
                      double *wt, double *wb)
{
    Py_ssize_t i = y / 2, top, bottom;
    if (y % 2 == 0) {
        top = i - 1, bottom = i, *wt = 0.25, *wb = 0.75;
    } else {
        top = i, bottom = i + 1, *wt = 0.75, *wb = 0.25;
    }
    if (top < 0 || bottom >= wc->ph) { /* the first and last rows: one source row, exactly */
        top = bottom = i < 0 ? 0 : (i > wc->ph - 1 ? wc->ph - 1 : i);
        *wt = 1.0, *wb = 0.0;
    }
    if (top < wc->first || bottom >= wc->first + wc->rows || bottom >= wc->ph)
        return -1;
    *b0 = wide_row(wc, top);
    *b1 = wide_row(wc, bottom);
    return 0;
}

/* blue = Cb - 128 and red = Cr - 128 of output row y: resample.Bilinear's vertical pass
   (float64 sums, one rounding), rounded as decoder.render does (+128.5, clip, truncate).
   -1 as blend_rows. */
ALWAYS_INLINE int chroma_line_body(WideChroma *wc, Py_ssize_t y, float *RESTRICT blue,
                                   float *RESTRICT red, const int fused)
{
    const float *top, *bottom;
    double wt, wb;
    if (blend_rows(wc, y, &top, &bottom, &wt, &wb) < 0)
        return -1;
    const float *RESTRICT b0 = top, *RESTRICT b1 = bottom;
    const float *RESTRICT r0 = b0 + wc->w, *RESTRICT r1 = b1 + wc->w;
    for (Py_ssize_t x = 0; x < wc->w; x++) {
        /* b1 wb and r1 wb are exact in float64 (as b0 wt), so fused (the FUSED copy) or not
           the sum is rounded once: the same bits */
        float b = (float)MULTIPLY_ADD(fused, (double)b1[x] * wb, (double)b0[x], wt) + 128.5f;
        float r = (float)MULTIPLY_ADD(fused, (double)r1[x] * wb, (double)r0[x], wt) + 128.5f;
        blue[x] = (float)((int)clamp_f(b, 0.0f, 255.0f) - 128);
        red[x] = (float)((int)clamp_f(r, 0.0f, 255.0f) - 128);
    }
    return 0;
}

HOT_WIDE static int chroma_line(WideChroma *wc, Py_ssize_t y, float *RESTRICT blue,
                                float *RESTRICT red)
{
    return chroma_line_body(wc, y, blue, red, 0);
}

#if FUSED_PRODUCT
FUSED static int chroma_line_fused(WideChroma *wc, Py_ssize_t y, float *RESTRICT blue,
                                   float *RESTRICT red)
{
    return chroma_line_body(wc, y, blue, red, 1);
}
#else
#define chroma_line_fused chroma_line
#endif

/* chroma_line, by the copy wc chose (get_chroma). */
static int chroma_row(WideChroma *wc, Py_ssize_t y, float *blue, float *red)
{
    return wc->fused ? chroma_line_fused(wc, y, blue, red) : chroma_line(wc, y, blue, red);
}

#if FUSED_PRODUCT
#include <immintrin.h>

/* ------------------------------------------------ decoding: exact product, AVX2 (kodakdec) */

/* left_pack8[m]: the order of 8 lanes that puts those whose bit is set in m first, then the
   others, each in their order (filled by the module's initialization). */
static uint8_t left_pack8[256][8];

static void fill_left_pack8(void)
{
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int t = 0; t < 8; t++)
            if (m >> t & 1)
                left_pack8[m][n++] = (uint8_t)t;
        for (int t = 0; t < 8; t++)
            if (!(m >> t & 1))
                left_pack8[m][n++] = (uint8_t)t;
    }
}

/* The non-zero lanes of x (a NaN counts as non-zero, as `x != 0` has it) first, then the
   others, each in their order, by left_pack8: x's values as float64 at values and the same
   lanes of `index` at indices (8 entries each); returns how many are non-zero. */
FUSED static inline int pack_lanes8(__m256 x, __m256i index, double *values, int32_t *indices)
{
    const int m = _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    const __m256i p = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)left_pack8[m]));
    const __m256 v = _mm256_permutevar8x32_ps(x, p);
    _mm256_storeu_pd(values, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_storeu_pd(values + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    _mm256_storeu_si256((__m256i *)indices, _mm256_permutevar8x32_epi32(index, p));
    return __builtin_popcount((unsigned)m);
}

/* One row's terms for exact_rows16_avx2: its 16 components x (zero beyond the rank) as
   float64 values with their offsets into bw (k * 16; 0 beyond the rank, where the value is 0),
   the non-zero ones first in the order of k, then the zeros; returns how many are non-zero
   (a NaN counts as non-zero). Branch-free: 8 lanes at a time (`pack_lanes8`). */
FUSED static inline int row_terms16(__m256 x0, __m256 x1, __m256i k0, __m256i k1,
                                    double *values, int32_t *offsets)
{
    /* the second eight after the first's non-zero ones; [n0 + 8, 16) stays zero from here */
    _mm256_storeu_pd(values + 8, _mm256_setzero_pd());
    _mm256_storeu_pd(values + 12, _mm256_setzero_pd());
    _mm256_storeu_si256((__m256i *)(offsets + 8), _mm256_setzero_si256());
    const int n0 = pack_lanes8(x0, k0, values, offsets);
    return n0 + pack_lanes8(x1, k1, values + n0, offsets + n0);
}

/* A row's 16 components (a: its first) as two vectors of 8 floats, zero beyond the rank (at
   most 16): contiguous ones loaded under `lanes` (lane t of the pair: -1 where t < rank),
   which reads no component beyond the rank. */
FUSED static inline void row_components16(const char *a, Py_ssize_t left_col, Py_ssize_t rank,
                                          const __m256i *lanes, __m256 *x0, __m256 *x1)
{
    if (left_col == 4 && rank == 16) {
        *x0 = _mm256_loadu_ps((const float *)a);
        *x1 = _mm256_loadu_ps((const float *)(a + 32));
        return;
    }
    if (left_col == 4) {
        *x0 = _mm256_maskload_ps((const float *)a, lanes[0]);
        *x1 = rank > 8 ? _mm256_maskload_ps((const float *)(a + 32), lanes[1])
                       : _mm256_setzero_ps();
        return;
    }
    float x[16] = {0};
    for (Py_ssize_t k = 0; k < rank; k++)
        x[k] = ld_f32(a + k * left_col);
    *x0 = _mm256_loadu_ps(x);
    *x1 = _mm256_loadu_ps(x + 8);
}

/* An adapted plane's row sums (of components 1 onwards) made whole as exact_rows16 and
   exact_rows32 make them: s * M + (16 A[i, 0]) W_0 B[j, 0] for `vectors` AVX2 vectors of sums
   (a: the row's first component, bw: W_0 B[j, 0] of the sums' first column). */
FUSED static inline void adapted_sums(__m256d *s, int vectors, const char *a, int32_t m,
                                      const double *bw)
{
    const __m256d vm = _mm256_set1_pd((double)m), x = _mm256_set1_pd(16.0 * (double)ld_f32(a));
    for (int q = 0; q < vectors; q++)
        s[q] = _mm256_fmadd_pd(x, _mm256_loadu_pd(bw + 4 * q), _mm256_mul_pd(s[q], vm));
}

/* s * unit + mean (mean: four vectors, or NULL) rounded to float32 at o: a row's 16 outputs. */
FUSED static inline void store_row16(float *o, const __m256d *s, __m256d unit,
                                     const __m256d *mean)
{
    for (int q = 0; q < 4; q++) {
        __m256d v = _mm256_mul_pd(s[q], unit);
        if (mean != NULL)
            v = _mm256_add_pd(v, mean[q]);
        _mm_storeu_ps(o + 4 * q, _mm256_cvtpd_ps(v));
    }
}

/* exact_run_fused's exact_rows16 (patch 4's 16 columns, a rank of at most 16) on CPUs with
   AVX2 and FMA (exact_product picks it, on AVX-512 CPUs too): three rows at a time, each
   row's 16 sums held as four AVX2 vectors, adding only as many terms as the row of the three
   with the most non-zero components has (a photo's luma rows hold about a quarter of their
   components non-zero; exact_rows16 multiplied every one). The terms are listed without a
   branch (`row_terms16`) and the three rows run the same count, so
   that the loop does not mispredict per row. The same bits: a zero term adds +0 or -0 to a
   sum that is never -0 (it starts at +0, and an exact sum of integers that cancels is +0),
   which leaves it as it is; each other term is the same fused multiply-add, in the same
   order, then s * unit (a power of two: exact) + mean rounded to float32. An adapted plane's
   rows (mult: M per row, spec 5.5) add their terms from component 1 (lane 0 left out of the
   list), then, as exact_rows16, s * M + 16 A[i, 0] W_0 B[j, 0] in one fused multiply-add. */
FUSED static void exact_rows16_avx2(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                    Py_ssize_t rows, Py_ssize_t rank, const double *bw,
                                    double unit, const double *means, char *out,
                                    Py_ssize_t out_row, const int32_t *mult)
{
    const __m256d vunit = _mm256_set1_pd(unit);
    __m256d mean[4];
    for (int q = 0; q < 4; q++)
        mean[q] = means != NULL ? _mm256_loadu_pd(means + 4 * q) : _mm256_setzero_pd();
    const __m256d *row_mean = means != NULL ? mean : NULL;
    /* each lane's offset into bw (k * 16), 0 beyond the rank, where the component is 0 */
    int32_t k_offsets[16];
    for (int k = 0; k < 16; k++)
        k_offsets[k] = k < rank ? 16 * k : 0;
    const __m256i k0 = _mm256_loadu_si256((const __m256i *)k_offsets);
    const __m256i k1 = _mm256_loadu_si256((const __m256i *)(k_offsets + 8));
    int32_t in_rank[16];
    for (int k = 0; k < 16; k++)
        in_rank[k] = k < rank ? -1 : 0;
    const __m256i lanes[2] = {_mm256_loadu_si256((const __m256i *)in_rank),
                              _mm256_loadu_si256((const __m256i *)(in_rank + 8))};
    /* an adapted plane's component 0 is added apart, after the multiplier */
    const __m256 listed = _mm256_castsi256_ps(_mm256_setr_epi32(mult != NULL ? 0 : -1, -1, -1,
                                                                -1, -1, -1, -1, -1));
    double values[3][16];
    int32_t offsets[3][16];
    Py_ssize_t i = 0;
    for (; i + 3 <= rows; i += 3) {
        int n = 0;
        for (int r = 0; r < 3; r++) {
            __m256 x0, x1;
            row_components16(left + (i + r) * left_row, left_col, rank, lanes, &x0, &x1);
            const int found = row_terms16(_mm256_and_ps(x0, listed), x1, k0, k1, values[r],
                                          offsets[r]);
            n = found > n ? found : n;
        }
        __m256d s[3][4];
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < 4; q++)
                s[r][q] = _mm256_setzero_pd();
        for (int t = 0; t < n; t++)
            for (int r = 0; r < 3; r++) {
                const __m256d at = _mm256_broadcast_sd(&values[r][t]);
                const double *b = bw + offsets[r][t];
                for (int q = 0; q < 4; q++)
                    s[r][q] = _mm256_fmadd_pd(at, _mm256_loadu_pd(b + 4 * q), s[r][q]);
            }
        for (int r = 0; r < 3; r++) {
            if (mult != NULL)
                adapted_sums(s[r], 4, left + (i + r) * left_row, mult[i + r], bw);
            store_row16((float *)(out + (i + r) * out_row), s[r], vunit, row_mean);
        }
    }
    for (; i < rows; i++) { /* the last rows, one at a time */
        __m256 x0, x1;
        row_components16(left + i * left_row, left_col, rank, lanes, &x0, &x1);
        const int n = row_terms16(_mm256_and_ps(x0, listed), x1, k0, k1, values[0], offsets[0]);
        __m256d s[4];
        for (int q = 0; q < 4; q++)
            s[q] = _mm256_setzero_pd();
        for (int t = 0; t < n; t++) {
            const __m256d at = _mm256_broadcast_sd(&values[0][t]);
            const double *b = bw + offsets[0][t];
            for (int q = 0; q < 4; q++)
                s[q] = _mm256_fmadd_pd(at, _mm256_loadu_pd(b + 4 * q), s[q]);
        }
        if (mult != NULL)
            adapted_sums(s, 4, left + i * left_row, mult[i], bw);
        store_row16((float *)(out + i * out_row), s, vunit, row_mean);
    }
}

/* A row's non-zero components (a: its first; the rank below 2^31) as float64 values with
   their indices k, in the order of k, without a branch: 8 components at a time, packed
   (`pack_lanes8`) at the list's end (values and ks hold rank + ROW_TERMS_SLACK entries: each
   pack writes 8); returns how many. `first`: those from component 1 with 1 (an adapted
   plane's, whose component 0 is added after the row's multiplier), from 0 with 0. */
FUSED static inline Py_ssize_t row_terms(const char *a, Py_ssize_t col, Py_ssize_t rank,
                                         int first, double *values, int32_t *ks)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* lane 0 of the first eight, kept or cleared: a cleared lane packs as a zero does */
    const __m256 listed = _mm256_castsi256_ps(_mm256_setr_epi32(first ? 0 : -1, -1, -1, -1,
                                                                -1, -1, -1, -1));
    Py_ssize_t n = 0;
    for (Py_ssize_t k0 = 0; k0 < rank; k0 += 8) {
        __m256 x;
        if (col == 4 && k0 + 8 <= rank) {
            x = _mm256_loadu_ps((const float *)(a + 4 * k0));
        } else if (col == 4) { /* the last components, none read beyond the rank */
            x = _mm256_maskload_ps((const float *)(a + 4 * k0),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rank - k0)),
                                                      iota));
        } else {
            float t[8] = {0};
            for (Py_ssize_t e = 0; e < 8 && k0 + e < rank; e++)
                t[e] = ld_f32(a + (k0 + e) * col);
            x = _mm256_loadu_ps(t);
        }
        if (k0 == 0)
            x = _mm256_and_ps(x, listed);
        n += pack_lanes8(x, _mm256_add_epi32(iota, _mm256_set1_epi32((int)k0)), values + n,
                         ks + n);
    }
    return n;
}

/* exact_run_fused's exact_rows32 (a multiple of 32 columns) on CPUs with AVX2 and FMA
   (exact_product picks it, on AVX-512 CPUs too): a row's 32 sums held as eight AVX2 vectors.
   The same operations in the same order (the row's non-zero terms listed as exact_rows32
   lists them, each sum +0 then one fused multiply-add per term; an adapted plane's (mult: M
   per row, spec 5.5) from component 1, then s * M + 16 A[i, 0] W_0 B[j, 0] in one fused
   multiply-add; then s * unit + mean rounded to float32), so the same bits. GCC compiled
   exact_rows32's `double s[32]` into a `rep stos` per 32 columns and kept the sums on the
   stack across its unrolled pairs of terms; on the chroma planes' rows (patch 8: 64 columns,
   a few non-zero terms each) that set-up and those loads and stores were most of the work. */
FUSED static void exact_rows32_avx2(const char *left, Py_ssize_t left_row, Py_ssize_t left_col,
                                    Py_ssize_t rows, Py_ssize_t rank, const double *bw,
                                    Py_ssize_t cols, double unit, const double *means,
                                    double *values, Py_ssize_t *terms, char *out,
                                    Py_ssize_t out_row, const int32_t *mult)
{
    const __m256d vunit = _mm256_set1_pd(unit);
    int32_t *ks = (int32_t *)terms; /* (rank + ROW_TERMS_SLACK entries of Py_ssize_t) */
    for (Py_ssize_t i = 0; i < rows; i++) {
        const char *a = left + i * left_row;
        const Py_ssize_t n = row_terms(a, left_col, rank, mult != NULL, values, ks);
        float *o = (float *)(out + i * out_row);
        for (Py_ssize_t j0 = 0; j0 < cols; j0 += 32) {
            __m256d s[8];
            for (int q = 0; q < 8; q++)
                s[q] = _mm256_setzero_pd();
            for (Py_ssize_t t = 0; t < n; t++) {
                const __m256d at = _mm256_broadcast_sd(values + t);
                const double *b = bw + (Py_ssize_t)ks[t] * cols + j0;
                for (int q = 0; q < 8; q++)
                    s[q] = _mm256_fmadd_pd(at, _mm256_loadu_pd(b + 4 * q), s[q]);
            }
            if (mult != NULL)
                adapted_sums(s, 8, a, mult[i], bw + j0);
            for (int q = 0; q < 8; q++) {
                __m256d v = _mm256_mul_pd(s[q], vunit);
                if (means != NULL)
                    v = _mm256_add_pd(v, _mm256_loadu_pd(means + j0 + 4 * q));
                _mm_storeu_ps(o + j0 + 4 * q, _mm256_cvtpd_ps(v));
            }
        }
    }
}

/* The colour output in one pass per row on CPUs with AVX2 and FMA (`ycc_row_avx2`; set once,
   by the module's initialization): the chroma blend, the rounding of Y', the conversion and
   the interleaved store of 8 pixels in registers, instead of four passes through line
   buffers (chroma_line, patch_row, rgb_planes, the interleave). The same operations on the
   same values as those passes, lane by lane: the same bits (docs/c-kernels.md). */
static int simd_colour;

#define AVX2_INLINE static inline __attribute__((target("avx2,fma"), always_inline))
#define AVX512_INLINE static inline __attribute__((target("avx512f,avx512bw,fma"), always_inline))
#define WIDE512 __attribute__((target("avx512f,avx512bw,fma")))

/* The steps whose instructions differ between the two widths by more than their prefix,
   written per width: 8 pixels (AVX2), then 16 (AVX-512). */

/* 4 floats at p as float64: half the lanes of 8. */
AVX2_INLINE __m256d half_doubles8(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

/* 8 floats: lo's 4, then hi's. */
AVX2_INLINE __m256 join8(__m128 lo, __m128 hi) { return _mm256_set_m128(hi, lo); }

/* 8 floats of Y': 4 at l, 4 at l + half (stride: for 16). */
AVX2_INLINE __m256 luma8(const char *l, Py_ssize_t stride, Py_ssize_t half)
{
    (void)stride;
    return join8(_mm_loadu_ps((const float *)l), _mm_loadu_ps((const float *)(l + half)));
}

/* rgb8's bytes stored as 8 pixels of c = 3 (RGB) or 4 channels (RGB and P, or RGB under the
   alpha already at dst: keep_alpha). */
AVX2_INLINE void store8(uint8_t *dst, Py_ssize_t c, int keep_alpha, __m256i planar)
{
    if (c == 4) {
        const __m256i order = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7,
                                               11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10,
                                               14, 3, 7, 11, 15);
        __m256i px = _mm256_shuffle_epi8(planar, order);
        if (keep_alpha)
            px = _mm256_blendv_epi8(px, _mm256_loadu_si256((const __m256i *)dst),
                                    _mm256_set1_epi32((int)0xFF000000u));
        _mm256_storeu_si256((__m256i *)dst, px);
        return;
    }
    /* 12 bytes of RGB in each lane's first three words, then the two lanes' 24 bytes in
       words 0-5 */
    const __m256i order = _mm256_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1,
                                           -1, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1,
                                           -1, -1);
    __m256i px = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(planar, order),
                                             _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(px));
    _mm_storel_epi64((__m128i *)(dst + 16), _mm256_extracti128_si256(px, 1));
}

/* half_doubles8 for 16 lanes. */
AVX512_INLINE __m512d half_doubles16(const float *p)
{
    return _mm512_cvtps_pd(_mm256_loadu_ps(p));
}

/* join8 for 16 floats. */
AVX512_INLINE __m512 join16(__m256 lo, __m256 hi)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                               _mm256_castps_pd(hi), 1));
}

/* 16 floats of Y': luma8's at l, then at l + stride. */
AVX512_INLINE __m512 luma16(const char *l, Py_ssize_t stride, Py_ssize_t half)
{
    return join16(luma8(l, 0, half), luma8(l + stride, 0, half));
}

/* store8 for 16 pixels. */
AVX512_INLINE void store16(uint8_t *dst, Py_ssize_t c, int keep_alpha, __m512i planar)
{
    if (c == 4) {
        const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13,
                                                                   2, 6, 10, 14, 3, 7, 11, 15));
        __m512i px = _mm512_shuffle_epi8(planar, order);
        if (keep_alpha) /* the fourth byte of every pixel from dst */
            px = _mm512_mask_blend_epi8((__mmask64)0x8888888888888888ull, px,
                                        _mm512_loadu_si512(dst));
        _mm512_storeu_si512(dst, px);
        return;
    }
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3,
                                                               7, 11, -1, -1, -1, -1));
    __m512i px = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 3, 7, 11, 15),
        _mm512_shuffle_epi8(planar, order));
    _mm512_mask_storeu_epi8(dst, (__mmask64)0xFFFFFFFFFFFFull, px); /* 48 bytes */
}

/* The rest, written once for both widths: DEFINE_COLOUR_LANES(N, ...) defines, for N pixels
   at a time with the intrinsics of prefix P (vectors VF of floats, VD of doubles, VI of
   ints) and the steps above of that N:

   chromaN(top, bottom, wt, wb): Cb - 128 (or Cr - 128) of N pixels as chroma_line_body
   computes them: the vertical blend of the doubled rows `top` and `bottom` in float64
   (fused: as the FUSED copy, the same bits), rounded to float32, + 128.5, clamped (NaN -> 0:
   max_ps returns its second operand for NaN, as clamp_f returns lo) and truncated.

   colour_termN(k, x): rgb_planes' t = trunc(k * x + 1/2) (float32 multiply, then add: two
   roundings).

   rgbN(l, stride, half, ...): N pixels of rgb_planes from Y' (lumaN) and the doubled chroma
   rows: per 128-bit lane (pixels 0-3, 4-7, ...) the bytes R0-3 G0-3 B0-3 P0-3, each clamped
   to 0..255 by the saturating packs (P: `pad`).

   ycc_blocksN(row, c, w, ...): ycc_row_avx2's pixels in whole blocks of N (storeN), Y' of
   pixels [8j, 8j + 8) at luma + j * stride; returns how many pixels it converted. */
#define DEFINE_COLOUR_LANES(N, INLINE, P, VF, VD, VI)                                          \
    INLINE VI chroma##N(const float *top, const float *bottom, VD wt, VD wb)                   \
    {                                                                                          \
        VD lo = P##fmadd_pd(half_doubles##N(top), wt, P##mul_pd(half_doubles##N(bottom), wb)); \
        VD hi = P##fmadd_pd(half_doubles##N(top + N / 2), wt,                                  \
                            P##mul_pd(half_doubles##N(bottom + N / 2), wb));                   \
        VF v = P##add_ps(join##N(P##cvtpd_ps(lo), P##cvtpd_ps(hi)), P##set1_ps(128.5f));       \
        v = P##min_ps(P##max_ps(v, P##setzero_ps()), P##set1_ps(255.0f));                      \
        return P##sub_epi32(P##cvttps_epi32(v), P##set1_epi32(128));                           \
    }                                                                                          \
                                                                                               \
    INLINE VI colour_term##N(VF k, VF x)                                                       \
    {                                                                                          \
        return P##cvttps_epi32(P##add_ps(P##mul_ps(k, x), P##set1_ps(0.5f)));                  \
    }                                                                                          \
                                                                                               \
    INLINE VI rgb##N(const char *l, Py_ssize_t stride, Py_ssize_t half, const float *b0,       \
                     const float *b1, const float *r0, const float *r1, VD wt, VD wb,          \
                     const VF *k, VI pad)                                                      \
    {                                                                                          \
        VF lum = P##add_ps(luma##N(l, stride, half), P##set1_ps(0.5f));                        \
        lum = P##min_ps(P##max_ps(lum, P##setzero_ps()), P##set1_ps(255.0f));                  \
        VI y = P##cvttps_epi32(lum);                                                           \
        VF xb = P##cvtepi32_ps(chroma##N(b0, b1, wt, wb));                                     \
        VF xr = P##cvtepi32_ps(chroma##N(r0, r1, wt, wb));                                     \
        VI r = P##add_epi32(y, P##srai_epi32(colour_term##N(k[0], xr), 6));                    \
        VI g = P##add_epi32(y, P##srai_epi32(                                                  \
            P##add_epi32(colour_term##N(k[1], xb), colour_term##N(k[2], xr)), 6));             \
        VI b = P##add_epi32(y, P##srai_epi32(colour_term##N(k[3], xb), 6));                    \
        return P##packus_epi16(P##packs_epi32(r, g), P##packs_epi32(b, pad));                  \
    }                                                                                          \
                                                                                               \
    INLINE Py_ssize_t ycc_blocks##N(uint8_t *row, Py_ssize_t c, Py_ssize_t w,                  \
                                    const char *luma, Py_ssize_t stride, Py_ssize_t half,      \
                                    const float *b0, const float *b1, const float *r0,         \
                                    const float *r1, double wt, double wb, const float *k,     \
                                    int pad)                                                   \
    {                                                                                          \
        const VD vwt = P##set1_pd(wt), vwb = P##set1_pd(wb);                                   \
        const VF vk[4] = {P##set1_ps(k[0]), P##set1_ps(k[1]), P##set1_ps(k[2]),                \
                          P##set1_ps(k[3])};                                                   \
        int padded = c == 4 && pad >= 0 && pad <= 255;                                         \
        const VI vpad = P##set1_epi32(padded ? pad : 0);                                       \
        Py_ssize_t x = 0;                                                                      \
        for (const char *l = luma; x + N <= w; x += N, l += N / 8 * stride)                    \
            store##N(row + c * x, c, !padded,                                                  \
                     rgb##N(l, stride, half, b0 + x, b1 + x, r0 + x, r1 + x, vwt, vwb, vk,     \
                            vpad));                                                            \
        return x;                                                                              \
    }

DEFINE_COLOUR_LANES(8, AVX2_INLINE, _mm256_, __m256, __m256d, __m256i)
DEFINE_COLOUR_LANES(16, AVX512_INLINE, _mm512_, __m512, __m512d, __m512i)

/* rgb_line of a row of w pixels of c = 3 or 4 channels (pad as rgb_line's), Y' read where
   it lies: pixels [8j, 8j + 4) at luma + j * stride bytes, [8j + 4, 8j + 8) `half` bytes
   after them (a line of floats: 32 and 16; patches of 8: 256 and 16; of 4: 128 and 64), the
   chroma blended from the doubled rows (b0, b1: Cb; r0, r1: Cr) with weights wt and wb
   (blend_rows). The last w % 8 pixels go through a copy of 8, so that nothing beyond the
   row's pixels is read or written. */
FUSED static void ycc_row_avx2(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const char *luma,
                               Py_ssize_t stride, Py_ssize_t half, const float *b0,
                               const float *b1, const float *r0, const float *r1, double wt,
                               double wb, const float *k, int pad)
{
    Py_ssize_t x = ycc_blocks8(row, c, w, luma, stride, half, b0, b1, r0, r1, wt, wb, k, pad);
    if (x == w)
        return;
    Py_ssize_t n = w - x;
    const char *l = luma + x / 8 * stride;
    float lt[8] = {0}, t0[8] = {0}, t1[8] = {0}, u0[8] = {0}, u1[8] = {0};
    uint8_t bytes[32] = {0};
    for (Py_ssize_t e = 0; e < n; e++) {
        lt[e] = ld_f32(e < 4 ? l + 4 * e : l + half + 4 * (e - 4));
        t0[e] = b0[x + e], t1[e] = b1[x + e], u0[e] = r0[x + e], u1[e] = r1[x + e];
    }
    memcpy(bytes, row + c * x, (size_t)(c * n));
    ycc_blocks8(bytes, c, 8, (const char *)lt, 32, 16, t0, t1, u0, u1, wt, wb, k, pad);
    memcpy(row + c * x, bytes, (size_t)(c * n));
}

/* ycc_row_avx2 16 pixels at a time (AVX-512: CPUs with AVX-512F and BW), the last w % 16
   by ycc_row_avx2: the same bits. */
WIDE512 static void ycc_row_avx512(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const char *luma,
                                   Py_ssize_t stride, Py_ssize_t half, const float *b0,
                                   const float *b1, const float *r0, const float *r1,
                                   double wt, double wb, const float *k, int pad)
{
    Py_ssize_t x = ycc_blocks16(row, c, w, luma, stride, half, b0, b1, r0, r1, wt, wb, k, pad);
    if (x < w)
        ycc_row_avx2(row + c * x, c, w - x, luma + x / 8 * stride, stride, half, b0 + x, b1 + x,
                     r0 + x, r1 + x, wt, wb, k, pad);
}
#endif

/* The colour output's row kernels the CPU runs: 0 (rgb_line's passes), 1 (ycc_row_avx2) or
   2 (ycc_row_avx512). Set once, by the module's initialization. */
static int best_colour_rows;

PyDoc_STRVAR(colour_rows_doc,
"colour_rows(level=-1) -> int\n\n"
"The row kernel of the colour output (store_rgb, upsample_ycc) in use: 0 plain C, 1 AVX2,\n"
"2 AVX-512 (the best the CPU runs, chosen at import); from 1, the encoder's rows of 8-bit\n"
"pixels of 3 or 4 channels (patch_plane, with the bias table or not) take AVX2 too.\n"
"level >= 0 chooses another one, at most the best (ValueError otherwise): for tests and\n"
"benchmarks, which compare them; all give the same bits. Process-wide and unlocked: not\n"
"while other threads decode. Returns the level in use before the call.");

static PyObject *colour_rows(PyObject *self, PyObject *args, PyObject *kwargs)
{
#if FUSED_PRODUCT
    int *in_use = &simd_colour;
#else
    static int plain; /* the plain loops, the only ones built */
    int *in_use = &plain;
#endif
    return switch_level(args, kwargs, "|i:colour_rows", in_use, best_colour_rows,
                        "colour_rows: level above what this CPU runs");
}

/* Whether rows of c channels take ycc_row_avx2 (`simd_row`). */
static int simd_rows(Py_ssize_t c)
{
#if FUSED_PRODUCT
    return simd_colour && (c == 3 || c == 4);
#else
    (void)c;
    return 0;
#endif
}

/* Output row y of w pixels of c channels (simd_rows(c)) by ycc_row_avx2, Y' read as it
   says: -1 as chroma_row. */
static int simd_row(WideChroma *wc, Py_ssize_t y, uint8_t *row, Py_ssize_t c, Py_ssize_t w,
                    const char *luma, Py_ssize_t stride, Py_ssize_t half, const float *k,
                    int pad)
{
#if FUSED_PRODUCT
    const float *b0, *b1;
    double wt, wb;
    if (blend_rows(wc, y, &b0, &b1, &wt, &wb) < 0)
        return -1;
    if (simd_colour == 2)
        ycc_row_avx512(row, c, w, luma, stride, half, b0, b1, b0 + wc->w, b1 + wc->w, wt, wb,
                       k, pad);
    else
        ycc_row_avx2(row, c, w, luma, stride, half, b0, b1, b0 + wc->w, b1 + wc->w, wt, wb,
                     k, pad);
    return 0;
#else
    (void)wc, (void)y, (void)row, (void)c, (void)w, (void)luma, (void)stride, (void)half;
    (void)k, (void)pad;
    return -1;
#endif
}

/* The colour constants: 4 float32, |k| <= 2^16 (so the products fit an int). */
static int get_constants(PyObject *obj, float k[4])
{
    Arr a = {0};
    if (get_array(obj, &a, "k", 1, T_F32, 0) < 0)
        return -1;
    int ok = a.size >= 4;
    for (int i = 0; ok && i < 4; i++) {
        k[i] = ld_f32(a.data + i * a.strides[0]);
        ok = fabsf(k[i]) <= 65536.0f; /* false for NaN */
    }
    release(&a);
    return ok ? 0 : value_error("k must hold 4 finite colour constants, |k| <= 2^16");
}

/* out: (h, w, >= 3) uint8 C-contiguous; rows [y0, y1) inside it. */
static int get_image(PyObject *obj, Arr *out, Py_ssize_t y0, Py_ssize_t y1)
{
    if (get_array(obj, out, "out", 3, T_U8, A_WRITABLE | A_CONTIGUOUS) < 0)
        return -1;
    if (out->shape[2] < 3 || y0 < 0 || y1 < y0 || y1 > out->shape[0])
        return value_error("out must be (h, w, >= 3) and 0 <= y0 <= y1 <= h");
    return 0;
}

/* Cb and Cr rows [first, first + rows) of chroma planes of exactly half the size of an image
   of `height` rows and out's width, C-contiguous float32, and the range of their rows that
   output rows [y0, y1) blend, which must lie inside the rows given. o_cb2 and o_cr2 (NULL or
   None: none): the rows that follow cb's and cr's, in arrays of their own, as wide. */
static int get_chroma(PyObject *o_cb, PyObject *o_cr, PyObject *o_cb2, PyObject *o_cr2,
                      Arr *cb, Arr *cr, Arr *cb2, Arr *cr2, const Arr *out,
                      Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t first, Py_ssize_t height,
                      WideChroma *wc)
{
    if (get_array(o_cb, cb, "cb", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o_cr, cr, "cr", 2, T_F32, A_CONTIGUOUS) < 0)
        return -1;
    if (cb->shape[0] != cr->shape[0] || cb->shape[1] != cr->shape[1])
        return value_error("cb and cr must be rows of planes half the size of the image");
    Py_ssize_t rows = cb->shape[0];
    int second = o_cb2 != NULL && o_cb2 != Py_None;
    wc->cb2 = wc->cr2 = NULL;
    if (second != (o_cr2 != NULL && o_cr2 != Py_None))
        return value_error("cb2 and cr2 are given together");
    if (second) {
        if (get_array(o_cb2, cb2, "cb2", 2, T_F32, A_CONTIGUOUS) < 0
            || get_array(o_cr2, cr2, "cr2", 2, T_F32, A_CONTIGUOUS) < 0)
            return -1;
        if (cb2->shape[0] != cr2->shape[0] || cb2->shape[1] != cb->shape[1]
            || cr2->shape[1] != cb->shape[1])
            return value_error("cb2 and cr2 must be rows as wide as cb and cr");
        /* (each array's rows times 4 bytes fit a Py_ssize_t: their sum does) */
        rows += cb2->shape[0];
        wc->cb2 = cb2->data;
        wc->cr2 = cr2->data;
    }
    if (2 * cb->shape[1] != out->shape[1] || height < 0 || height % 2 != 0 || first < 0
        || first > height / 2 - rows || y1 > height)
        return value_error("cb and cr must be rows of planes half the size of the image");
    wc->ph = height / 2;
    wc->w = out->shape[1];
    wc->cb = cb->data;
    wc->cr = cr->data;
    wc->row_bytes = cb->strides[0];
    wc->cw = cb->shape[1];
    wc->tag[0] = wc->tag[1] = -1;
    wc->first = first;
    wc->rows = rows;
    wc->split = first + cb->shape[0];
    Py_ssize_t lo = (y0 - 1 > 0 ? y0 - 1 : 0) / 2;
    Py_ssize_t hi = (y1 + 1) / 2 + 1 < wc->ph ? (y1 + 1) / 2 + 1 : wc->ph;
    if (y1 > y0 && (lo < first || hi > first + rows))
        return value_error("cb and cr must hold the chroma rows that rows y0..y1 blend");
    wc->wide = NULL;
#if FUSED_PRODUCT
    wc->fused = fused_colour;
#else
    wc->fused = 0;
#endif
    return 0;
}

/* Line buffers: the two slots of doubled chroma rows (4w floats), then blue, red, 3w bytes of
   planar RGB (w floats) and a luma line of `luma` floats. */
static float *line_buffers(WideChroma *wc, Py_ssize_t luma)
{
    Py_ssize_t n = mul_size(7, wc->w);
    if (n < 0 || luma < 0 || n > PY_SSIZE_T_MAX / 4 - luma) {
        PyErr_NoMemory();
        return NULL;
    }
    float *buffer = malloc(sizeof(float) * (size_t)(n + luma + 1));
    if (buffer == NULL)
        PyErr_NoMemory();
    wc->wide = buffer;
    return buffer;
}

PyDoc_STRVAR(upsample_ycc_doc,
"upsample_ycc(out, y0, y1, cb, cr, k) -> None\n\n"
"Rows [y0, y1) of out (h, w, >= 3) uint8 C-contiguous, holding Y' in channel 0, become\n"
"RGB: Cb and Cr (h/2, w/2 float32 planes) are doubled as resample.Bilinear does and\n"
"converted as the spec (section 5) and Pillow convert Y'CbCr (k: codec.colour.YCC_MULTIPLIERS).");

static PyObject *upsample_ycc(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "cb", "cr", "k", NULL};
    PyObject *o_out, *o_cb, *o_cr, *o_k, *result = NULL;
    Py_ssize_t y0, y1;
    Arr out = {0}, cb = {0}, cr = {0};
    WideChroma wc = {0};
    float k[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnOOO:upsample_ycc", names, &o_out, &y0,
                                     &y1, &o_cb, &o_cr, &o_k))
        return NULL;
    if (get_image(o_out, &out, y0, y1) < 0 || get_constants(o_k, k) < 0
        || get_chroma(o_cb, o_cr, NULL, NULL, &cb, &cr, NULL, NULL, &out, y0, y1, 0,
                      out.shape[0], &wc) < 0
        || line_buffers(&wc, out.shape[1]) == NULL)
        goto done;
    Py_ssize_t w = out.shape[1], c = out.shape[2];
    float *blue = wc.wide + 4 * w, *red = blue + w, *luma = red + 2 * w;
    uint8_t *planar = (uint8_t *)(red + w);
    int error = 0, simd = simd_rows(c);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = y0; y < y1 && !error; y++) {
        uint8_t *row = (uint8_t *)out.data + y * out.strides[0];
        if (simd) {
            luma_line(row, c, w, luma);
            error = simd_row(&wc, y, row, c, w, (const char *)luma, 32, 16, k, -1);
            continue;
        }
        error = chroma_row(&wc, y, blue, red);
        if (!error) {
            luma_line(row, c, w, luma);
            rgb_line(row, c, w, luma, blue, red, k, planar, -1);
        }
    }
    Py_END_ALLOW_THREADS
    if (error)
        PyErr_SetString(PyExc_RuntimeError, "upsample_ycc: chroma row out of range");
    else
        result = Py_NewRef(Py_None);
done:
    free(wc.wide);
    release(&out);
    release(&cb);
    release(&cr);
    return result;
}

/* Cb + 128 and Cr + 128 (blue and red: chroma_line's) into channels 1 and 2 of a row of w
   pixels of c channels. */
static void chroma_bytes(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const float *blue,
                         const float *red)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        row[c * x + 1] = (uint8_t)((int)blue[x] + 128);
        row[c * x + 2] = (uint8_t)((int)red[x] + 128);
    }
}

#if FUSED_PRODUCT
static int chroma_row_bytes(int simd, WideChroma *wc, Py_ssize_t y, uint8_t *row, Py_ssize_t c,
                            Py_ssize_t w, uint8_t *lines);
#endif

PyDoc_STRVAR(double_chroma_doc,
"double_chroma(out, y0, y1, cb, cr) -> None\n\n"
"Rows [y0, y1) of out (h, w, >= 3) uint8 C-contiguous get Cb + 128 and Cr + 128 in channels\n"
"1 and 2 (with AVX2 and FMA, rows of 3 or 4 channels: their other bytes written back as they\n"
"were, so no other thread may write those rows meanwhile): the cb and cr planes (h/2, w/2 float32) doubled as resample.Bilinear does and\n"
"rounded as decoder.render rounds them (upsample_ycc without the conversion: the samples the\n"
"deblocking filter of format version 4 works on).\n"
"Rows of a band alone (as store_rgb): out's row 0 is the image's row `top`, cb and cr hold\n"
"the chroma planes' rows from `first` on, and the image has `height` rows (-1: out's rows,\n"
"top = 0). cb2 and cr2 (as wide as cb and cr): the chroma rows that follow cb's and cr's,\n"
"where an output band's rows lie in two bands of the chroma planes (no joined copy).");

static PyObject *double_chroma(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "cb", "cr", "top", "first", "height", "cb2",
                            "cr2", NULL};
    PyObject *o_out, *o_cb, *o_cr, *o_cb2 = Py_None, *o_cr2 = Py_None, *result = NULL;
    Py_ssize_t y0, y1, top = 0, first = 0, height = -1;
    Arr out = {0}, cb = {0}, cr = {0}, cb2 = {0}, cr2 = {0};
    WideChroma wc = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnOO|nnnOO:double_chroma", names, &o_out,
                                     &y0, &y1, &o_cb, &o_cr, &top, &first, &height, &o_cb2,
                                     &o_cr2))
        return NULL;
    if (top < 0 || y0 < top || (height < 0 && top != 0)) {
        value_error("double_chroma: needs 0 <= top <= y0, and top = 0 without height");
        return NULL;
    }
    if (get_image(o_out, &out, y0 - top, y1 - top) < 0
        || get_chroma(o_cb, o_cr, o_cb2, o_cr2, &cb, &cr, &cb2, &cr2, &out, y0, y1, first,
                      height < 0 ? out.shape[0] : height, &wc) < 0
        || line_buffers(&wc, 0) == NULL)
        goto done;
    Py_ssize_t w = out.shape[1], c = out.shape[2];
    float *blue = wc.wide + 4 * w, *red = blue + w;
    int error = 0;
    Py_BEGIN_ALLOW_THREADS
#if FUSED_PRODUCT
    int simd = simd_rows(c) ? simd_colour : 0;
#endif
    for (Py_ssize_t y = y0; y < y1 && !error; y++) {
        uint8_t *row = (uint8_t *)out.data + (y - top) * out.strides[0];
#if FUSED_PRODUCT
        if (simd) {  /* blue's floats hold the two lines of bytes */
            error = chroma_row_bytes(simd, &wc, y, row, c, w, (uint8_t *)blue);
            continue;
        }
#endif
        error = chroma_row(&wc, y, blue, red);
        if (!error)
            chroma_bytes(row, c, w, blue, red);
    }
    Py_END_ALLOW_THREADS
    if (error)
        PyErr_SetString(PyExc_RuntimeError, "double_chroma: chroma row out of range");
    else
        result = Py_NewRef(Py_None);
done:
    free(wc.wide);
    release(&out);
    release(&cb);
    release(&cr);
    release(&cb2);
    release(&cr2);
    return result;
}

/* dst[gx * patch + p] = flat[base + gx * patch^2 + p] for gx < count, p < patch: one pixel row
   of `count` patches stored one after another (flat float32, from the row's offset `base`;
   dst float32, not necessarily aligned). */
static void patch_row(const char *flat, Py_ssize_t base, Py_ssize_t count, Py_ssize_t patch,
                      char *dst)
{
    const char *src = flat + 4 * base;
    /* The format's patch sides get copies of a size the compiler knows (a few moves each,
       not a call to memcpy per patch). */
    if (patch == 4)
        for (Py_ssize_t gx = 0; gx < count; gx++)
            memcpy(dst + 4 * gx * 4, src + 4 * gx * 16, 16);
    else if (patch == 8)
        for (Py_ssize_t gx = 0; gx < count; gx++)
            memcpy(dst + 4 * gx * 8, src + 4 * gx * 64, 32);
    else
        for (Py_ssize_t gx = 0; gx < count; gx++)
            memcpy(dst + 4 * gx * patch, src + 4 * gx * patch * patch, 4 * (size_t)patch);
}

/* A patch-layout matrix (float32, C-contiguous) that holds the pixel rows [0, rows) of
   per_row patches each; -1 with ValueError if patch < 1, per_row < 0 or it is too small. */
static int check_patches(const Arr *matrix, Py_ssize_t rows, Py_ssize_t patch,
                         Py_ssize_t per_row)
{
    if (patch < 1 || per_row < 0)
        return value_error("patch must be >= 1 and per_row >= 0");
    Py_ssize_t area = mul_size(patch, patch);
    Py_ssize_t needed = mul_size(mul_size((rows + patch - 1) / patch, per_row), area);
    if (area < 0 || needed < 0 || matrix->size < needed)
        return value_error("matrix has too few patches for these rows");
    return 0;
}

/* A one-pass kernel's Y' from a band's patches (`matrix`, from the image's row `top`), as
   deblock_ycc and restore_ycc take it: the matrix checked to hold rows [0, rows) and its
   patches to cover the image width w, and *mline a line buffer of per_row * patch + 1
   floats for `ring_luma`. 0 (with *mline NULL) when no matrix is given; -1 with an
   exception set otherwise. */
static int patch_luma(PyObject *o_matrix, Arr *matrix, Py_ssize_t rows, Py_ssize_t patch,
                      Py_ssize_t per_row, Py_ssize_t w, const char *who, float **mline)
{
    *mline = NULL;
    if (o_matrix == Py_None)
        return 0;
    if (get_array(o_matrix, matrix, "matrix", 2, T_F32, A_CONTIGUOUS) < 0
        || check_patches(matrix, rows, patch, per_row) < 0)
        return -1;
    Py_ssize_t n = mul_size(per_row, patch);
    if (n < w) {
        PyErr_Format(PyExc_ValueError, "%s: per_row * patch must cover the image width", who);
        return -1;
    }
    if ((*mline = malloc(sizeof(float) * (size_t)(n + 1))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}


/* Output line `line` (w float32) of a vertical pass: sum over t < vt of k[t] * row
   min(local + t, n - 1) of rows (n x w float32), in float64 from the first tap's product, tap
   after tap, rounded to float32. Two and three taps (the bilinear filter's) with the rows
   fixed before the loop over the line, so that it vectorizes; the same operations. */
HOT static void vertical_taps(const float *rows, Py_ssize_t w, Py_ssize_t n, Py_ssize_t local,
                              const double *k, Py_ssize_t vt, float *RESTRICT line)
{
    const float *r0 = rows + local * w;
    const float *r1 = rows + (local + 1 < n - 1 ? local + 1 : n - 1) * w;
    const float *r2 = rows + (local + 2 < n - 1 ? local + 2 : n - 1) * w;
    if (vt == 2) {
        const double k0 = k[0], k1 = k[1];
        for (Py_ssize_t j = 0; j < w; j++) {
            double sum = (double)r0[j] * k0;
            sum += (double)r1[j] * k1;
            line[j] = (float)sum;
        }
        return;
    }
    if (vt == 3) {
        const double k0 = k[0], k1 = k[1], k2 = k[2];
        for (Py_ssize_t j = 0; j < w; j++) {
            double sum = (double)r0[j] * k0;
            sum += (double)r1[j] * k1;
            sum += (double)r2[j] * k2;
            line[j] = (float)sum;
        }
        return;
    }
    for (Py_ssize_t j = 0; j < w; j++) {
        double sum = (double)r0[j] * k[0];
        for (Py_ssize_t t = 1; t < vt; t++) {
            Py_ssize_t at = local + t < n - 1 ? local + t : n - 1;
            sum += (double)rows[at * w + j] * k[t];
        }
        line[j] = (float)sum;
    }
}

static void bytes_row(uint8_t *row, Py_ssize_t channels, Py_ssize_t width, const char *src,
                      float add);

/* One row's horizontal pass: to[j] = sum over t < ht of weight[t * w + j] * x[index[t * w + j]]
   (index and weights by tap), in float64 from the first tap's product, tap after tap, rounded
   to float32; two and three taps with each tap's arrays fixed, so that it vectorizes. */
HOT static void horizontal_taps(const float *x, const int64_t *index, const double *weight,
                                Py_ssize_t w, Py_ssize_t ht, float *RESTRICT to)
{
    const int64_t *i0 = index, *i1 = index + w, *i2 = index + 2 * w;
    const double *k0 = weight, *k1 = weight + w, *k2 = weight + 2 * w;
    if (ht == 2) {
        for (Py_ssize_t j = 0; j < w; j++) {
            double sum = (double)x[i0[j]] * k0[j];
            sum += (double)x[i1[j]] * k1[j];
            to[j] = (float)sum;
        }
        return;
    }
    if (ht == 3) {
        for (Py_ssize_t j = 0; j < w; j++) {
            double sum = (double)x[i0[j]] * k0[j];
            sum += (double)x[i1[j]] * k1[j];
            sum += (double)x[i2[j]] * k2[j];
            to[j] = (float)sum;
        }
        return;
    }
    for (Py_ssize_t j = 0; j < w; j++) {
        double sum = (double)x[index[j]] * weight[j];
        for (Py_ssize_t t = 1; t < ht; t++)
            sum += (double)x[index[t * w + j]] * weight[t * w + j];
        to[j] = (float)sum;
    }
}

PyDoc_STRVAR(resample_chroma_doc,
"resample_chroma(out, channel, y0, y1, src, lo, vfirst, vweights, hindex, hweights) -> None\n\n"
"Rows [y0, y1) of a chroma plane resized by Pillow's BILINEAR filter (codec.resample.Resampler:\n"
"the sizes the fused kernels do not take, an odd side) and rounded into channel `channel` of\n"
"out's rows 0 .. y1 - y0 (out (>= y1 - y0, w, >= 3) uint8 C-contiguous) as decoder.render's\n"
"chroma_samples rounds them: + 128.5 in float32, clamped to 0..255, truncated.\n"
"src (n, in_w) float32 C-contiguous: the plane's rows lo .. lo + n, the rows the resampler's\n"
"source_rows(y0, y1) gives. Along each axis the resampler's tables, or None where the axis\n"
"keeps its size: vfirst (>= y1,) int64 and vweights (>= y1, taps) float64, output row y of\n"
"sum over t of vweights[y, t] * row min(vfirst[y] - lo + t, n - 1); hindex (taps, w) int64\n"
"and hweights (taps, w) float64, column x of sum over t of hweights[t, x] * column\n"
"hindex[t, x]. Each sum in float64 from its first tap's product, tap after tap (no\n"
"contraction), rounded to float32: the horizontal pass first, on every row of src, then the\n"
"vertical pass, as the numpy resampler's passes: the same bytes for finite samples (an exactly\n"
"doubled axis's tables hold a tap of weight 0, which makes an infinite sample NaN). Every\n"
"index is checked.");

static PyObject *resample_chroma(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "channel", "y0", "y1", "src", "lo", "vfirst", "vweights",
                            "hindex", "hweights", NULL};
    PyObject *o_out, *o_src, *o_vf, *o_vw, *o_hi, *o_hw, *result = NULL;
    Py_ssize_t channel, y0, y1, lo;
    Arr out = {0}, src = {0}, vf = {0}, vw = {0}, hi = {0}, hw = {0};
    float *across = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnnOnOOOO:resample_chroma", names, &o_out,
                                     &channel, &y0, &y1, &o_src, &lo, &o_vf, &o_vw, &o_hi,
                                     &o_hw))
        return NULL;
    int vertical = o_vf != Py_None, horizontal = o_hi != Py_None;
    if ((o_vw != Py_None) != vertical || (o_hw != Py_None) != horizontal) {
        value_error("resample_chroma: each axis's index and weights given together");
        return NULL;
    }
    if (y0 < 0 || y1 < y0) {
        value_error("resample_chroma: needs 0 <= y0 <= y1");
        return NULL;
    }
    if (get_image(o_out, &out, 0, y1 - y0) < 0
        || get_array(o_src, &src, "src", 2, T_F32, A_CONTIGUOUS) < 0
        || (vertical && (get_array(o_vf, &vf, "vfirst", 1, T_I64, A_CONTIGUOUS) < 0
                         || get_array(o_vw, &vw, "vweights", 2, T_F64, A_CONTIGUOUS) < 0))
        || (horizontal && (get_array(o_hi, &hi, "hindex", 2, T_I64, A_CONTIGUOUS) < 0
                           || get_array(o_hw, &hw, "hweights", 2, T_F64, A_CONTIGUOUS) < 0)))
        goto done;
    Py_ssize_t n = src.shape[0], in_w = src.shape[1], w = out.shape[1], c = out.shape[2];
    Py_ssize_t vt = vertical ? vw.shape[1] : 1, ht = horizontal ? hw.shape[0] : 1;
    if (channel < 0 || channel >= c) {
        value_error("resample_chroma: channel beyond out's");
        goto done;
    }
    if (ht < 1 || vt < 1) {
        value_error("resample_chroma: tables of no taps");
        goto done;
    }
    if (horizontal ? (hi.shape[0] != ht || hi.shape[1] != w || hw.shape[1] != w) : in_w != w) {
        value_error("resample_chroma: horizontal tables of another width than out's");
        goto done;
    }
    const int64_t *h_index = horizontal ? (const int64_t *)hi.data : NULL;
    for (Py_ssize_t i = 0; horizontal && i < hi.size; i++)
        if (h_index[i] < 0 || h_index[i] >= in_w) {
            value_error("resample_chroma: a column index outside src");
            goto done;
        }
    const int64_t *v_first = vertical ? (const int64_t *)vf.data : NULL;
    if (vertical) {
        if (vf.shape[0] < y1 || vw.shape[0] != vf.shape[0]) {
            value_error("resample_chroma: vertical tables shorter than y1");
            goto done;
        }
        for (Py_ssize_t y = y0; y < y1; y++) /* as uint64: exact, no overflow */
            if (v_first[y] < lo || (uint64_t)v_first[y] - (uint64_t)lo >= (uint64_t)n) {
                value_error("resample_chroma: a row outside src");
                goto done;
            }
    } else if (y0 < y1 && (y0 < lo || (uint64_t)(y1 - 1) - (uint64_t)lo >= (uint64_t)n)) {
        value_error("resample_chroma: a row outside src");
        goto done;
    }
    if (y0 == y1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* the horizontal pass's rows, then one line of the vertical pass (float32) */
    Py_ssize_t pass = horizontal ? mul_size(n, w) : 0;
    Py_ssize_t floats = pass < 0 || pass > PY_SSIZE_T_MAX - w - 1 ? -1 : pass + w + 1;
    Py_ssize_t bytes = floats < 0 ? -1 : mul_size(floats, (Py_ssize_t)sizeof(float));
    if (bytes < 0 || (across = malloc((size_t)bytes)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *across_line = across + pass;
    const float *rows = horizontal ? across : (const float *)src.data;
    const double *v_weight = vertical ? (const double *)vw.data : NULL;
    const double *h_weight = horizontal ? (const double *)hw.data : NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; horizontal && r < n; r++)
        horizontal_taps((const float *)src.data + r * in_w, h_index, h_weight, w, ht,
                        across + r * w);
    for (Py_ssize_t y = y0; y < y1; y++) {
        uint8_t *row = (uint8_t *)out.data + (y - y0) * out.strides[0] + channel;
        Py_ssize_t local = (vertical ? (Py_ssize_t)((uint64_t)v_first[y] - (uint64_t)lo)
                                     : y - lo);
        const float *line = rows + local * w;
        if (vertical) { /* the taps' rows, clamped to the last as the numpy pass clamps them */
            vertical_taps(rows, w, n, local, v_weight + y * vt, vt, across_line);
            line = across_line;
        }
        bytes_row(row, c, w, (const char *)line, 128.5f); /* chroma_samples' rounding */
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(across);
    release(&out);
    release(&src);
    release(&vf);
    release(&vw);
    release(&hi);
    release(&hw);
    return result;
}
PyDoc_STRVAR(store_rgb_doc,
"store_rgb(matrix, out, y0, y1, cb, cr, k, patch, per_row, top=0, first=0, height=-1, pad=-1)\n"
"-> None\n\n"
"`store_bytes` of a Y' band (patch layout, offset 0) and `upsample_ycc` of its rows in one\n"
"pass: each pixel row's Y' is rounded into a line buffer and converted with the doubled\n"
"chroma straight into out, so out is written once and never read.\n"
"Rows of a band alone: out's row 0 is the image's row `top`, cb and cr hold the chroma\n"
"planes' rows from `first` on, and the image has `height` rows (-1: out's rows, top = 0).\n"
"pad (0..255, out of 4 channels): channel 3 of every pixel written becomes pad, as in\n"
"Pillow's RGB images (RGBX, X = 255); else channel 3 is left as it is (alpha).");

static PyObject *store_rgb(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"matrix", "out", "y0", "y1", "cb", "cr", "k", "patch", "per_row",
                            "top", "first", "height", "pad", NULL};
    PyObject *o_matrix, *o_out, *o_cb, *o_cr, *o_k, *result = NULL;
    Py_ssize_t y0, y1, patch, per_row, top = 0, first = 0, height = -1, pad = -1;
    Arr matrix = {0}, out = {0}, cb = {0}, cr = {0};
    WideChroma wc = {0};
    float k[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnnOOOnn|nnnn:store_rgb", names, &o_matrix,
                                     &o_out, &y0, &y1, &o_cb, &o_cr, &o_k, &patch, &per_row,
                                     &top, &first, &height, &pad))
        return NULL;
    if (pad < 0 || pad > 255)  /* no pad; the row kernels take it as an int */
        pad = -1;
    if (top < 0 || y0 < top || (height < 0 && top != 0)) {
        value_error("store_rgb: needs 0 <= top <= y0, and top = 0 without height");
        return NULL;
    }
    if (get_array(o_matrix, &matrix, "matrix", 2, T_F32, A_CONTIGUOUS) < 0
        || get_image(o_out, &out, y0 - top, y1 - top) < 0 || get_constants(o_k, k) < 0
        || get_chroma(o_cb, o_cr, NULL, NULL, &cb, &cr, NULL, NULL, &out, y0, y1, first,
                      height < 0 ? out.shape[0] : height, &wc) < 0
        || check_patches(&matrix, y1 - y0, patch, per_row) < 0)
        goto done;
    Py_ssize_t w = out.shape[1], c = out.shape[2], line = mul_size(per_row, patch);
    if (line < w) {
        value_error("store_rgb: per_row * patch must cover the image width");
        goto done;
    }
    if (line_buffers(&wc, line) == NULL)
        goto done;
    float *blue = wc.wide + 4 * w, *red = blue + w, *luma = red + 2 * w;
    uint8_t *planar = (uint8_t *)(red + w);
    int error = 0, simd = simd_rows(c);
    /* ycc_row_avx2 reads Y' in the patches where 8 pixels are one patch row (patch 8) or
       two (patch 4); other sides are copied into the line first */
    int in_place = simd && (patch == 8 || patch == 4);
    Py_ssize_t stride = patch == 8 ? 4 * 64 : 4 * 32, half = patch == 8 ? 16 : 64;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = y0; y < y1 && !error; y++) {
        Py_ssize_t gy = (y - y0) / patch, py = (y - y0) % patch;
        Py_ssize_t base = gy * per_row * patch * patch + py * patch;
        uint8_t *row = (uint8_t *)out.data + (y - top) * out.strides[0];
        if (in_place) {
            error = simd_row(&wc, y, row, c, w, matrix.data + 4 * base, stride, half, k,
                             (int)pad);
            continue;
        }
        patch_row(matrix.data, base, per_row, patch, (char *)luma);
        if (simd) {
            error = simd_row(&wc, y, row, c, w, (const char *)luma, 32, 16, k, (int)pad);
            continue;
        }
        error = chroma_row(&wc, y, blue, red);
        if (!error)
            rgb_line(row, c, w, luma, blue, red, k, planar, (int)pad);
    }
    Py_END_ALLOW_THREADS
    if (error)
        PyErr_SetString(PyExc_RuntimeError, "store_rgb: chroma row out of range");
    else
        result = Py_NewRef(Py_None);
done:
    free(wc.wide);
    release(&matrix);
    release(&out);
    release(&cb);
    release(&cr);
    return result;
}

ALWAYS_INLINE void ycc_row_floats(const uint8_t *RESTRICT row, Py_ssize_t c, Py_ssize_t w,
                              float *RESTRICT luma, float *RESTRICT blue, float *RESTRICT red)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        luma[x] = row[c * x];
        blue[x] = (float)row[c * x + 1] - 128.0f;
        red[x] = (float)row[c * x + 2] - 128.0f;
    }
}

/* A row of w pixels of c channels from Y'CbCr bytes to RGB in place, as Pillow converts
   (luma, blue, red: w floats of scratch each; planar: 3 * w bytes); pad as rgb_line's. */
static void ycc_line(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const float *k, float *luma,
                     float *blue, float *red, uint8_t *planar, int pad)
{
    if (c == 3) /* strides the compiler knows */
        ycc_row_floats(row, 3, w, luma, blue, red);
    else if (c == 4)
        ycc_row_floats(row, 4, w, luma, blue, red);
    else
        ycc_row_floats(row, c, w, luma, blue, red);
    rgb_line(row, c, w, luma, blue, red, k, planar, pad);
}

#if FUSED_PRODUCT
static void ycc_line_bytes(int simd, uint8_t *row, Py_ssize_t c, Py_ssize_t w, const float *k,
                           uint8_t *lines, int pad);
static void channel_line_get(const uint8_t *s, int step, Py_ssize_t w, uint8_t *line);
static void channel_line_put(uint8_t *s, int step, Py_ssize_t w, const uint8_t *line);
#endif

PyDoc_STRVAR(convert_ycc_doc,
"convert_ycc(out, y0, y1, k, pad=-1) -> None\n\n"
"Rows [y0, y1) of out (h, w, >= 3) uint8 C-contiguous from Y'CbCr to RGB in place, as\n"
"Pillow converts; with 4 channels and 0 <= pad <= 255, channel 3 becomes pad (Pillow's X\n"
"byte of RGB), else it is left as it is.");

static PyObject *convert_ycc(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "k", "pad", NULL};
    PyObject *o_out, *o_k, *result = NULL;
    Py_ssize_t y0, y1, pad = -1;
    Arr out = {0};
    float k[4], *blue = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnO|n:convert_ycc", names, &o_out, &y0,
                                     &y1, &o_k, &pad))
        return NULL;
    if (get_image(o_out, &out, y0, y1) < 0 || get_constants(o_k, k) < 0)
        goto done;
    Py_ssize_t w = out.shape[1], c = out.shape[2];
    blue = malloc(sizeof(float) * (size_t)(4 * w + 1)); /* blue, red, luma, planar RGB */
    if (blue == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *red = blue + w, *luma = red + w;
    uint8_t *planar = (uint8_t *)(luma + w);
    Py_BEGIN_ALLOW_THREADS
#if FUSED_PRODUCT
    int simd = simd_rows(c) ? simd_colour : 0;
    if (simd)
        for (Py_ssize_t y = y0; y < y1; y++)
            ycc_line_bytes(simd, (uint8_t *)out.data + y * out.strides[0], c, w, k, planar,
                           pad >= 0 && pad <= 255 ? (int)pad : -1);
    else
#endif
        for (Py_ssize_t y = y0; y < y1; y++)
            ycc_line((uint8_t *)out.data + y * out.strides[0], c, w, k, luma, blue, red, planar,
                     pad >= 0 && pad <= 255 ? (int)pad : -1);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(blue);
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: 16-bit colour */

/* floor(v / 2^16) for any int64 v, without the implementation-defined >> of a negative value
   (|v| < 2^35 here: no overflow in the negation). */
ALWAYS_INLINE int64_t floor_div_2_16(int64_t v)
{
    return v >= 0 ? v >> 16 : -((-v + 65535) >> 16);
}

ALWAYS_INLINE uint16_t clamp_word(int64_t v) { return (uint16_t)(v < 0 ? 0 : (v > 65535 ? 65535 : v)); }

/* The 16-bit inverse coefficients (codec.colour.YCC16_INVERSE): 4 integers, |k| <= 2^17, so
   that every k * x (|x| <= 2^15) and their sums stay below 2^34. */
static int get_wide_constants(PyObject *obj, int64_t k[4])
{
    Arr a = {0};
    if (get_array(obj, &a, "k", 1, T_INTS, 0) < 0)
        return -1;
    int ok = a.size >= 4;
    for (int i = 0; ok && i < 4; i++) {
        k[i] = ld_int(a.data + i * a.strides[0], a.type);
        ok = k[i] >= -(1 << 17) && k[i] <= (1 << 17);
    }
    release(&a);
    return ok ? 0 : value_error("k must hold 4 integer colour constants, |k| <= 2^17");
}

/* One row of w pixels of c >= 3 uint16 channels (possibly unaligned), Y' Cb Cr -> R G B. */
HOT static void wide_rgb_row(char *row, Py_ssize_t c, Py_ssize_t w, const int64_t *k)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        char *px = row + 2 * c * x;
        int64_t luma = ld_u16(px), xb = (int64_t)ld_u16(px + 2) - 32768;
        int64_t xr = (int64_t)ld_u16(px + 4) - 32768;
        uint16_t rgb[3] = {
            clamp_word(luma + floor_div_2_16(k[0] * xr + 32768)),
            clamp_word(luma + floor_div_2_16(k[1] * xb + k[2] * xr + 32768)),
            clamp_word(luma + floor_div_2_16(k[3] * xb + 32768)),
        };
        memcpy(px, rgb, sizeof rgb);
    }
}

PyDoc_STRVAR(convert_wide_ycc_doc,
"convert_wide_ycc(out, y0, y1, k) -> None\n\n"
"Rows [y0, y1) of out (h, w, >= 3) uint16 C-contiguous from 16-bit Y', Cb, Cr (chroma\n"
"centred on 32768) to RGB in place, as codec.colour.wide_ycc_to_rgb (spec §5.2, version 3):\n"
"R = Y' + floor((k0 xr + 2^15) / 2^16), G = Y' + floor((k1 xb + k2 xr + 2^15) / 2^16),\n"
"B = Y' + floor((k3 xb + 2^15) / 2^16), clamped; k: codec.colour.YCC16_INVERSE.");

static PyObject *convert_wide_ycc(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "k", NULL};
    PyObject *o_out, *o_k, *result = NULL;
    Py_ssize_t y0, y1;
    Arr out = {0};
    int64_t k[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnO:convert_wide_ycc", names, &o_out, &y0,
                                     &y1, &o_k))
        return NULL;
    if (get_array(o_out, &out, "out", 3, T_U16, A_WRITABLE | A_CONTIGUOUS) < 0
        || get_wide_constants(o_k, k) < 0)
        goto done;
    if (out.shape[2] < 3 || y0 < 0 || y1 < y0 || y1 > out.shape[0]) {
        value_error("convert_wide_ycc: out must be (h, w, >= 3) and 0 <= y0 <= y1 <= h");
        goto done;
    }
    Py_ssize_t w = out.shape[1], c = out.shape[2];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = y0; y < y1; y++)
        wide_rgb_row(out.data + y * out.strides[0], c, w, k);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: stores */

ALWAYS_INLINE void bytes_row_body(uint8_t *RESTRICT row, Py_ssize_t channels,
                                  Py_ssize_t width, const char *RESTRICT src, float add)
{
    for (Py_ssize_t x = 0; x < width; x++)
        row[channels * x] = (uint8_t)(int)clamp_f(ld_f32(src + 4 * x) + add, 0.0f, 255.0f);
}

/* row[channels * x] = float32 src[x] + add, clipped to 0..255 (NaN: 0) and truncated,
   x < width. One channel: contiguous bytes, one loop that vectorizes. Several: the values of a
   piece of the row first (a loop that vectorizes), then its bytes stored every channels-th
   byte (byte stores at a stride do not vectorize, and the two in one loop left the
   arithmetic scalar too). */
ALWAYS_INLINE void bytes_row_pieces(uint8_t *RESTRICT row, Py_ssize_t channels,
                                    Py_ssize_t width, const char *RESTRICT src, float add)
{
    enum { PIECE = 256 };
    int32_t values[PIECE];
    for (Py_ssize_t x0 = 0; x0 < width; x0 += PIECE) {
        Py_ssize_t count = width - x0 < PIECE ? width - x0 : PIECE;
        for (Py_ssize_t x = 0; x < count; x++)
            values[x] = (int)clamp_f(ld_f32(src + 4 * (x0 + x)) + add, 0.0f, 255.0f);
        for (Py_ssize_t x = 0; x < count; x++)
            row[channels * (x0 + x)] = (uint8_t)values[x];
    }
}

HOT static void bytes_row(uint8_t *row, Py_ssize_t channels, Py_ssize_t width,
                          const char *src, float add)
{
    /* strides the compiler knows: 3 (svdcodec.decode's RGB), 4 (Pillow's RGBX and RGBA),
       1 (L, contiguous bytes: one loop that vectorizes) */
    if (channels == 1)
        bytes_row_body(row, 1, width, src, add);
    else if (channels == 3)
        bytes_row_pieces(row, 3, width, src, add);
    else if (channels == 4)
        bytes_row_pieces(row, 4, width, src, add);
    else
        bytes_row_pieces(row, channels, width, src, add);
}

PyDoc_STRVAR(store_bytes_doc,
"store_bytes(matrix, out, y0, y1, x0, c, offset, patch, per_row) -> None\n\n"
"decoder.plane.PlaneReconstructor.store_bytes written into out[y0:y1, x0:, c] (out C-contiguous): matrix rows are\n"
"patches (patch > 0, per_row to a patch row, x0 = 0; C-contiguous) or pixel rows; each\n"
"value + offset + 0.5, clipped to 0..255 and truncated; patches cropped to the image.");

static PyObject *store_bytes(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"matrix", "out", "y0", "y1", "x0", "c", "offset", "patch",
                            "per_row", NULL};
    PyObject *o_matrix, *o_out, *result = NULL;
    Py_ssize_t y0, y1, x0, c, patch, per_row;
    float offset;
    Arr matrix = {0}, out = {0};
    float *line = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnnnnfnn:store_bytes", names, &o_matrix,
                                     &o_out, &y0, &y1, &x0, &c, &offset, &patch, &per_row))
        return NULL;
    if (get_array(o_matrix, &matrix, "matrix", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o_out, &out, "out", 3, T_U8, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t h = y1 - y0, w = out.shape[1], channels = out.shape[2], width;
    if (y0 < 0 || y1 < y0 || y1 > out.shape[0] || x0 < 0 || c < 0 || c >= channels
        || patch < 0) {
        value_error("store_bytes: needs 0 <= y0 <= y1 <= h, x0 >= 0, 0 <= c < channels, "
                    "patch >= 0");
        goto done;
    }
    if (patch == 0) {
        width = matrix.shape[1] < w - x0 ? matrix.shape[1] : w - x0;
        if (matrix.shape[0] < h) {
            value_error("store_bytes: matrix has fewer rows than y1 - y0");
            goto done;
        }
    } else {
        if (check_patches(&matrix, h, patch, per_row) < 0)
            goto done;
        Py_ssize_t n = mul_size(per_row, patch);
        width = n < w ? n : w;
        if (width > w - x0) {
            value_error("store_bytes: patches beyond the image's width");
            goto done;
        }
        line = malloc(sizeof(float) * (size_t)(n + 1));
        if (line == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    float add = offset + 0.5f;
    if (width <= 0)
        h = 0; /* nothing of the matrix lies inside the image */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < h; y++) {
        const float *src;
        float *row_buffer = line;
        if (patch == 0) {
            src = (const float *)(matrix.data + y * matrix.strides[0]);
        } else {
            Py_ssize_t gy = y / patch, py = y % patch;
            patch_row(matrix.data, gy * per_row * patch * patch + py * patch, per_row, patch,
                      (char *)row_buffer);
            src = row_buffer;
        }
        bytes_row((uint8_t *)out.data + (y0 + y) * out.strides[0] + x0 * channels + c,
                  channels, width, (const char *)src, add);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(line);
    release(&matrix);
    release(&out);
    return result;
}

PyDoc_STRVAR(store_floats_doc,
"store_floats(matrix, out, y0, y1, patch, per_row) -> None\n\n"
"decoder.plane.PlaneReconstructor.float_rows of a patch layout written into out[y0:y1] (a C-contiguous\n"
"float32 plane): matrix rows are patches, per_row to a patch row (C-contiguous), cropped\n"
"to the plane.");

static PyObject *store_floats(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"matrix", "out", "y0", "y1", "patch", "per_row", NULL};
    PyObject *o_matrix, *o_out, *result = NULL;
    Py_ssize_t y0, y1, patch, per_row;
    Arr matrix = {0}, out = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnnnn:store_floats", names, &o_matrix,
                                     &o_out, &y0, &y1, &patch, &per_row))
        return NULL;
    if (get_array(o_matrix, &matrix, "matrix", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o_out, &out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    if (y0 < 0 || y1 < y0 || y1 > out.shape[0]) {
        value_error("store_floats: needs 0 <= y0 <= y1 <= height");
        goto done;
    }
    if (check_patches(&matrix, y1 - y0, patch, per_row) < 0)
        goto done;
    Py_ssize_t w = out.shape[1];
    if (mul_size(per_row, patch) < w) {
        value_error("store_floats: per_row * patch must cover the plane's width");
        goto done;
    }
    Py_ssize_t whole = w / patch < per_row ? w / patch : per_row; /* patches inside the plane */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < y1 - y0; y++) {
        Py_ssize_t gy = y / patch, py = y % patch;
        Py_ssize_t base = gy * per_row * patch * patch + py * patch;
        char *row = out.data + (y0 + y) * out.strides[0];
        /* Whole patches straight into the row (patch_row's copies of a known size: a call to
           memcpy per patch cost more than the copy), then the part of the last patch inside
           the plane. */
        patch_row(matrix.data, base, whole, patch, row);
        for (Py_ssize_t x = whole * patch; x < w; x++)
            memcpy(row + 4 * x, matrix.data + 4 * (base + (x / patch) * patch * patch
                                                   + x % patch), 4);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&matrix);
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: deblocking */

/* How far p0 and q0 of one edge move (spec §5.4): 0 where the edge is left alone. Without
   branches (an edge's test is as likely to pass as to fail: a branch would be mispredicted
   half the time), and with the floor of (4 (q0 - p0) + (p1 - q1) + 4) / 8 taken as a shift of
   a non-negative number: the sum is at least -1271, so adding 1280 = 8 * 160 first and taking
   160 after gives the floor without shifting a negative value. */
ALWAYS_INLINE int edge_delta(int p1, int p0, int q0, int q1, int alpha, int beta, int tc)
{
    int active = (abs(p0 - q0) < alpha) & (abs(p1 - p0) < beta) & (abs(q1 - q0) < beta);
    int d = ((4 * (q0 - p0) + (p1 - q1) + 1284) >> 3) - 160;
    d = d < -tc ? -tc : (d > tc ? tc : d);
    return active ? d : 0;
}

/* One row of n samples `step` bytes apart: every edge e = period, 2 period, ... with
   e + 1 < n, each reading the samples as they were before the row was filtered (only p1 can
   have moved before it is read: the previous edge's q0, when period is 2). */
ALWAYS_INLINE void deblock_row_body(uint8_t *s, Py_ssize_t step, Py_ssize_t n,
                                    Py_ssize_t period, int alpha, int beta, int tc)
{
    if (period == 2) {
        int saved = s[0]; /* the previous edge's q0 as it was (the first edge's p1: s[0]) */
        for (Py_ssize_t e = 2; e + 1 < n; e += 2) {
            int p1 = saved, p0 = s[(e - 1) * step], q0 = s[e * step], q1 = s[(e + 1) * step];
            saved = q0;
            int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
            s[(e - 1) * step] = (uint8_t)clamp_byte(p0 + d);
            s[e * step] = (uint8_t)clamp_byte(q0 - d);
        }
        return;
    }
    for (Py_ssize_t e = period; e + 1 < n; e += period) {
        uint8_t *at = s + e * step;
        int p1 = at[-2 * step], p0 = at[-step], q0 = at[0], q1 = at[step];
        int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
        at[-step] = (uint8_t)clamp_byte(p0 + d);
        at[0] = (uint8_t)clamp_byte(q0 - d);
    }
}

/* deblock_row_body with the strides of 1 to 4 channels known to the compiler. */
HOT static void deblock_row(uint8_t *s, Py_ssize_t step, Py_ssize_t n, Py_ssize_t period,
                            int alpha, int beta, int tc)
{
    switch (step) {
    case 1: deblock_row_body(s, 1, n, period, alpha, beta, tc); break;
    case 2: deblock_row_body(s, 2, n, period, alpha, beta, tc); break;
    case 3: deblock_row_body(s, 3, n, period, alpha, beta, tc); break;
    case 4: deblock_row_body(s, 4, n, period, alpha, beta, tc); break;
    default: deblock_row_body(s, step, n, period, alpha, beta, tc);
    }
}

/* The edges of row e of one channel (e a multiple of its period, e + 1 < the height) for
   columns [x0, x1): `step` bytes between columns, `row` bytes between rows. `saved` holds each
   column's previous q0 as it was (period 2: the previous edge's q0 is this edge's p1). The
   four rows are read along the row, as they lie in memory. */
ALWAYS_INLINE void deblock_edge_row_body(uint8_t *s, Py_ssize_t row, Py_ssize_t step,
                                         Py_ssize_t e, Py_ssize_t x0, Py_ssize_t x1,
                                         Py_ssize_t period, int alpha, int beta, int tc,
                                         uint8_t *RESTRICT saved)
{
    uint8_t *r1 = s + (e - 2) * row, *r0 = s + (e - 1) * row, *t0 = s + e * row,
            *t1 = s + (e + 1) * row;
    if (period == 2) {
        int first = e == 2; /* p1 is row 0 itself; later, the previous edge's q0 as it was */
        for (Py_ssize_t x = x0; x < x1; x++) {
            Py_ssize_t at = x * step;
            int p1 = first ? r1[at] : saved[x - x0], p0 = r0[at], q0 = t0[at], q1 = t1[at];
            saved[x - x0] = (uint8_t)q0;
            int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
            r0[at] = (uint8_t)clamp_byte(p0 + d);
            t0[at] = (uint8_t)clamp_byte(q0 - d);
        }
        return;
    }
    for (Py_ssize_t x = x0; x < x1; x++) {
        Py_ssize_t at = x * step;
        int p1 = r1[at], p0 = r0[at], q0 = t0[at], q1 = t1[at];
        int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
        r0[at] = (uint8_t)clamp_byte(p0 + d);
        t0[at] = (uint8_t)clamp_byte(q0 - d);
    }
}

/* deblock_edge_row_body with the strides of 1 to 4 channels known to the compiler. */
HOT static void deblock_edge_row(uint8_t *s, Py_ssize_t row, Py_ssize_t step, Py_ssize_t e,
                                 Py_ssize_t x0, Py_ssize_t x1, Py_ssize_t period, int alpha,
                                 int beta, int tc, uint8_t *saved)
{
    switch (step) {
    case 1: deblock_edge_row_body(s, row, 1, e, x0, x1, period, alpha, beta, tc, saved); break;
    case 2: deblock_edge_row_body(s, row, 2, e, x0, x1, period, alpha, beta, tc, saved); break;
    case 3: deblock_edge_row_body(s, row, 3, e, x0, x1, period, alpha, beta, tc, saved); break;
    case 4: deblock_edge_row_body(s, row, 4, e, x0, x1, period, alpha, beta, tc, saved); break;
    default: deblock_edge_row_body(s, row, step, e, x0, x1, period, alpha, beta, tc, saved);
    }
}

/* One filtered channel: c, period, alpha, beta, tc. */
typedef struct {
    Py_ssize_t c, period;
    int alpha, beta, tc;
} EdgeFilter;

/* The filter table (int64 (k, 5), k <= channels, checked by the caller) as EdgeFilters:
   NULL with ValueError unless each row has a distinct channel < channels, a period 2 .. 2^20
   and alpha, beta, tc in 0..255 (or MemoryError). */
static EdgeFilter *edge_filters(const Arr *fa, Py_ssize_t channels, const char *who)
{
    Py_ssize_t k = fa->shape[0];
    EdgeFilter *f = malloc(sizeof(EdgeFilter) * (size_t)(k + 1));
    if (f == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    const int64_t *v = (const int64_t *)fa->data;
    for (Py_ssize_t i = 0; i < k; i++) {
        const int64_t *r = v + 5 * i;
        int ok = r[0] >= 0 && r[0] < channels && r[1] >= 2 && r[1] <= (1 << 20);
        for (int j = 2; j < 5; j++)
            ok = ok && r[j] >= 0 && r[j] <= 255;
        for (Py_ssize_t j = 0; ok && j < i; j++)
            ok = f[j].c != r[0];
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "%s: each filter needs a distinct channel < channels, "
                         "period 2 .. 2^20 and alpha, beta, tc in 0..255", who);
            free(f);
            return NULL;
        }
        f[i] = (EdgeFilter){(Py_ssize_t)r[0], (Py_ssize_t)r[1], (int)r[2], (int)r[3], (int)r[4]};
    }
    return f;
}

#if FUSED_PRODUCT
static void deblock_row_lines(uint8_t *row, int step, Py_ssize_t w, const EdgeFilter *f,
                              Py_ssize_t k, uint8_t *line);
#endif

PyDoc_STRVAR(deblock_doc,
"deblock(out, filters, axis, lo, hi) -> None\n\n"
"codec.deblock.filter_lines on the channels of out ((h, w, channels) uint8, C-contiguous)\n"
"that filters lists (int64 (k, 5): channel, period >= 2, alpha, beta, tc in 0..255; each\n"
"channel once), in place, all channels while their rows are in cache: axis 1 the vertical\n"
"edges of rows [lo, hi), axis 0 the horizontal edges of columns [lo, hi). (Axis 1 with AVX2\n"
"and FMA, 3 or 4 channels: the rows' unfiltered bytes are written back as they were.)");

static PyObject *deblock(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "filters", "axis", "lo", "hi", NULL};
    PyObject *o_out, *o_filters, *result = NULL;
    Py_ssize_t axis, lo, hi;
    Arr out = {0}, fa = {0};
    EdgeFilter *f = NULL;
    uint8_t *saved = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnnn:deblock", names, &o_out, &o_filters,
                                     &axis, &lo, &hi))
        return NULL;
    if (get_array(o_out, &out, "out", 3, T_U8, A_WRITABLE | A_CONTIGUOUS) < 0
        || get_array(o_filters, &fa, "filters", 2, T_I64, A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t h = out.shape[0], w = out.shape[1], channels = out.shape[2], k = fa.shape[0];
    Py_ssize_t extent = axis == 1 ? h : w;
    if ((axis != 0 && axis != 1) || lo < 0 || hi < lo || hi > extent || fa.shape[1] != 5
        || k > channels) {
        value_error("deblock: needs axis 0 or 1, 0 <= lo <= hi <= the other axis' extent, "
                    "filters (k <= channels, 5)");
        goto done;
    }
    /* the horizontal edges' saved q0s; for deblock_row_lines a line and its scratch */
    saved = malloc((size_t)((hi - lo) * k + 1) + (size_t)(2 * w + 96));
    if (saved == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if ((f = edge_filters(&fa, channels, "deblock")) == NULL)
        goto done;
    Py_ssize_t row = out.strides[0], step = out.strides[1];
    uint8_t *base = (uint8_t *)out.data;
    Py_BEGIN_ALLOW_THREADS
#if FUSED_PRODUCT
    if (axis == 1 && simd_colour && (step == 3 || step == 4) && w >= 17) {
        for (Py_ssize_t y = lo; y < hi; y++)
            deblock_row_lines(base + y * row, (int)step, w, f, k, saved);
    } else
#endif
    if (axis == 1) {
        for (Py_ssize_t y = lo; y < hi; y++)
            for (Py_ssize_t i = 0; i < k; i++)
                deblock_row(base + y * row + f[i].c, step, w, f[i].period, f[i].alpha,
                            f[i].beta, f[i].tc);
    } else {
        for (Py_ssize_t e = 2; e + 1 < h; e++)
            for (Py_ssize_t i = 0; i < k; i++)
                if (e % f[i].period == 0)
                    deblock_edge_row(base + f[i].c, row, step, e, lo, hi, f[i].period,
                                     f[i].alpha, f[i].beta, f[i].tc, saved + i * (hi - lo));
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(f);
    free(saved);
    release(&out);
    release(&fa);
    return result;
}

/* -1 with ValueError if a horizontal edge of a filter (rows e - 2 .. e + 1, e a multiple of
   its period) has rows on both sides of band boundary b, i.e. b mod period is period - 1, 0
   or 1 (0 < b < h; every period >= 4, so that these are three residues and edges a period
   apart share no row). */
static int check_boundary(Py_ssize_t b, Py_ssize_t h, const EdgeFilter *f, Py_ssize_t k)
{
    for (Py_ssize_t i = 0; b > 0 && b < h && i < k; i++) {
        Py_ssize_t r = b % f[i].period;
        if (r == 0 || r == 1 || r == f[i].period - 1)
            return value_error("deblock_ycc: a band boundary y0 or y1 splits a horizontal edge "
                               "(y mod period in period - 1, 0, 1)");
    }
    return 0;
}

/* The lag of deblock_ycc's conversion: horizontal edge e is filtered once row e + 1 is in
   (writing rows e - 1 and e, reading e - 2 .. e + 1 as the vertical pass left them), so row y
   is final once edge y + 1 is done, at row y + 2, and last read by edge y + 2, at row y + 3;
   YCC_LAG + 1 rows of Y', Cb and Cr are held at once. */
#define YCC_LAG 3
#define YCC_RING (YCC_LAG + 1)

/* One horizontal edge of a channel held as contiguous rows (p1, p0, q0, q1: rows e - 2 .. e + 1
   of one plane, n samples each): contiguous and branch-free, so it vectorizes. */
HOT static void edge_lines(const uint8_t *RESTRICT r1, uint8_t *RESTRICT r0,
                           uint8_t *RESTRICT t0, const uint8_t *RESTRICT t1, Py_ssize_t n,
                           int alpha, int beta, int tc)
{
    for (Py_ssize_t x = 0; x < n; x++) {
        int p1 = r1[x], p0 = r0[x], q0 = t0[x], q1 = t1[x];
        int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
        r0[x] = (uint8_t)clamp_byte(p0 + d);
        t0[x] = (uint8_t)clamp_byte(q0 - d);
    }
}

/* The vertical edges of one contiguous row of n samples, period >= 4 (edges share no sample):
   edge j's four samples s[(j + 1) period - 2 ..] a fixed stride apart, a constant for the
   periods patches give, so that the compiler can vectorize the loads. */
ALWAYS_INLINE void edges_along_body(uint8_t *RESTRICT s, Py_ssize_t n, Py_ssize_t period,
                                    int alpha, int beta, int tc)
{
    Py_ssize_t count = n >= 2 ? (n - 2) / period : 0; /* e = (j + 1) period, e + 1 < n */
    uint8_t *g = s + period - 2;
    for (Py_ssize_t j = 0; j < count; j++) {
        uint8_t *at = g + j * period;
        int p1 = at[0], p0 = at[1], q0 = at[2], q1 = at[3];
        int d = edge_delta(p1, p0, q0, q1, alpha, beta, tc);
        at[1] = (uint8_t)clamp_byte(p0 + d);
        at[2] = (uint8_t)clamp_byte(q0 - d);
    }
}

HOT static void edges_along(uint8_t *s, Py_ssize_t n, Py_ssize_t period, int alpha, int beta,
                            int tc)
{
    switch (period) {
    case 4: edges_along_body(s, n, 4, alpha, beta, tc); break;
    case 8: edges_along_body(s, n, 8, alpha, beta, tc); break;
    case 16: edges_along_body(s, n, 16, alpha, beta, tc); break;
    default: edges_along_body(s, n, period, alpha, beta, tc);
    }
}

/* Channel ch (0 .. 2) of a row of w pixels of c channels into a contiguous line. */
HOT static void channel_line(const uint8_t *RESTRICT row, Py_ssize_t c, Py_ssize_t ch,
                             Py_ssize_t w, uint8_t *RESTRICT line)
{
    if (c == 3) {
        for (Py_ssize_t x = 0; x < w; x++)
            line[x] = row[3 * x + ch];
    } else {
        for (Py_ssize_t x = 0; x < w; x++)
            line[x] = row[c * x + ch];
    }
}

/* Bytes of Cb + 128 or Cr + 128 from chroma_line's blue or red. */
HOT static void chroma_line_bytes(const float *RESTRICT v, Py_ssize_t w, uint8_t *RESTRICT line)
{
    for (Py_ssize_t x = 0; x < w; x++)
        line[x] = (uint8_t)((int)v[x] + 128);
}

/* Y', Cb, Cr lines (bytes) as rgb_line's floats: luma, blue = Cb - 128, red = Cr - 128. */
HOT static void ycc_floats(const uint8_t *RESTRICT y, const uint8_t *RESTRICT b,
                           const uint8_t *RESTRICT r, Py_ssize_t w, float *RESTRICT luma,
                           float *RESTRICT blue, float *RESTRICT red)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        luma[x] = y[x];
        blue[x] = (float)b[x] - 128.0f;
        red[x] = (float)r[x] - 128.0f;
    }
}

#if FUSED_PRODUCT
/* deblock_ycc's rows in AVX2 (and AVX-512 where simd_level is 2; the same bits as the plain
   loops above and below, tests/test_deblock.py compares them): its four steps per row, each in registers over a
   whole row instead of a sample at a time: Y', Cb and Cr rounded into bytes, the vertical
   edges, the horizontal edges, the conversion to RGB. The filter's arithmetic is in 16-bit
   lanes (every sum of edge_delta lies within +-1280); the clamps to 0..255 are saturating
   packs. */

/* Y' of 8 pixels (4 floats at lo, 4 at hi) rounded as bytes_row rounds with add 1/2 (and as
   rgb8 does): + 1/2, clamped (NaN -> 0), truncated; as 8 int32. */
AVX2_INLINE __m256i luma_int8(const char *lo, const char *hi)
{
    __m256 l = _mm256_set_m128(_mm_loadu_ps((const float *)hi), _mm_loadu_ps((const float *)lo));
    l = _mm256_add_ps(l, _mm256_set1_ps(0.5f));
    l = _mm256_min_ps(_mm256_max_ps(l, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(l);
}

/* The low bytes of 8 int32 in 0..255 stored at dst (8 bytes). */
AVX2_INLINE void store_bytes8(uint8_t *dst, __m256i v)
{
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(w, w));
}

/* A row of w Y' bytes from Y' read where it lies (luma, stride, half: as ycc_row_avx2 takes
   them), the last w % 8 through a copy of 8. */
FUSED static void luma_bytes_avx2(uint8_t *dst, Py_ssize_t w, const char *luma,
                                  Py_ssize_t stride, Py_ssize_t half)
{
    Py_ssize_t x = 0;
    const char *l = luma;
    for (; x + 8 <= w; x += 8, l += stride)
        store_bytes8(dst + x, luma_int8(l, l + half));
    if (x == w)
        return;
    float lt[8] = {0};
    uint8_t bytes[8];
    for (Py_ssize_t e = 0; e < w - x; e++)
        lt[e] = ld_f32(e < 4 ? l + 4 * e : l + half + 4 * (e - 4));
    store_bytes8(bytes, luma_int8((const char *)lt, (const char *)(lt + 4)));
    memcpy(dst + x, bytes, (size_t)(w - x));
}

/* Rows of w Cb and Cr bytes blended from the doubled rows (b0, b1: Cb; r0, r1: Cr; weights
   wt, wb: blend_rows), as chroma_line and chroma_line_bytes give them (chroma8 + 128). */
FUSED static void chroma_bytes_avx2(uint8_t *blue, uint8_t *red, Py_ssize_t w,
                                    const float *b0, const float *b1, const float *r0,
                                    const float *r1, double wt, double wb)
{
    const __m256d vwt = _mm256_set1_pd(wt), vwb = _mm256_set1_pd(wb);
    const __m256i offset = _mm256_set1_epi32(128);
    Py_ssize_t x = 0;
    for (; x + 8 <= w; x += 8) {
        store_bytes8(blue + x, _mm256_add_epi32(chroma8(b0 + x, b1 + x, vwt, vwb), offset));
        store_bytes8(red + x, _mm256_add_epi32(chroma8(r0 + x, r1 + x, vwt, vwb), offset));
    }
    if (x == w)
        return;
    Py_ssize_t n = w - x;
    float t0[8] = {0}, t1[8] = {0}, u0[8] = {0}, u1[8] = {0};
    uint8_t bytes[8];
    memcpy(t0, b0 + x, sizeof(float) * (size_t)n);
    memcpy(t1, b1 + x, sizeof(float) * (size_t)n);
    memcpy(u0, r0 + x, sizeof(float) * (size_t)n);
    memcpy(u1, r1 + x, sizeof(float) * (size_t)n);
    store_bytes8(bytes, _mm256_add_epi32(chroma8(t0, t1, vwt, vwb), offset));
    memcpy(blue + x, bytes, (size_t)n);
    store_bytes8(bytes, _mm256_add_epi32(chroma8(u0, u1, vwt, vwb), offset));
    memcpy(red + x, bytes, (size_t)n);
}

/* rgb8 of 8 pixels from bytes of Y', Cb and Cr: Y' as it is, Cb - 128 and Cr - 128 as the
   floats rgb_planes takes. */
AVX2_INLINE __m256i rgb8_bytes(const uint8_t *y, const uint8_t *cb, const uint8_t *cr,
                               const __m256 *k, __m256i pad)
{
    const __m256i offset = _mm256_set1_epi32(128);
    __m256i l = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)y));
    __m256 xb = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)cb)), offset));
    __m256 xr = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)cr)), offset));
    __m256i r = _mm256_add_epi32(l, _mm256_srai_epi32(colour_term8(k[0], xr), 6));
    __m256i g = _mm256_add_epi32(l, _mm256_srai_epi32(
        _mm256_add_epi32(colour_term8(k[1], xb), colour_term8(k[2], xr)), 6));
    __m256i b = _mm256_add_epi32(l, _mm256_srai_epi32(colour_term8(k[3], xb), 6));
    return _mm256_packus_epi16(_mm256_packs_epi32(r, g), _mm256_packs_epi32(b, pad));
}

/* rgb_line of a row of w pixels of c = 3 or 4 channels (pad as rgb_line's) from rows of Y',
   Cb and Cr bytes; the last w % 8 pixels through a copy of 8. */
FUSED static void rgb_bytes_avx2(uint8_t *row, Py_ssize_t c, Py_ssize_t w, const uint8_t *y,
                                 const uint8_t *cb, const uint8_t *cr, const float *k, int pad)
{
    const __m256 vk[4] = {_mm256_set1_ps(k[0]), _mm256_set1_ps(k[1]), _mm256_set1_ps(k[2]),
                          _mm256_set1_ps(k[3])};
    int padded = c == 4 && pad >= 0 && pad <= 255;
    const __m256i vpad = _mm256_set1_epi32(padded ? pad : 0);
    Py_ssize_t x = 0;
    for (; x + 8 <= w; x += 8)
        store8(row + c * x, c, !padded, rgb8_bytes(y + x, cb + x, cr + x, vk, vpad));
    if (x == w)
        return;
    Py_ssize_t n = w - x;
    uint8_t ty[8] = {0}, tb[8] = {0}, tr[8] = {0}, bytes[32] = {0};
    memcpy(ty, y + x, (size_t)n);
    memcpy(tb, cb + x, (size_t)n);
    memcpy(tr, cr + x, (size_t)n);
    memcpy(bytes, row + c * x, (size_t)(c * n));
    store8(bytes, c, !padded, rgb8_bytes(ty, tb, tr, vk, vpad));
    memcpy(row + c * x, bytes, (size_t)(c * n));
}

/* luma_bytes_avx2 16 pixels at a time (AVX-512), the last w % 16 by luma_bytes_avx2. */
WIDE512 static void luma_bytes_avx512(uint8_t *dst, Py_ssize_t w, const char *luma,
                                      Py_ssize_t stride, Py_ssize_t half)
{
    Py_ssize_t x = 0;
    const char *l = luma;
    for (; x + 16 <= w; x += 16, l += 2 * stride) {
        __m512 lum = luma16(l, stride, half);
        lum = _mm512_add_ps(lum, _mm512_set1_ps(0.5f));
        lum = _mm512_min_ps(_mm512_max_ps(lum, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
        _mm_storeu_si128((__m128i *)(dst + x), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(lum)));
    }
    if (x < w)
        luma_bytes_avx2(dst + x, w - x, l, stride, half);
}

/* chroma_bytes_avx2 16 pixels at a time (AVX-512), the last w % 16 by chroma_bytes_avx2. */
WIDE512 static void chroma_bytes_avx512(uint8_t *blue, uint8_t *red, Py_ssize_t w,
                                        const float *b0, const float *b1, const float *r0,
                                        const float *r1, double wt, double wb)
{
    const __m512d vwt = _mm512_set1_pd(wt), vwb = _mm512_set1_pd(wb);
    const __m512i offset = _mm512_set1_epi32(128);
    Py_ssize_t x = 0;
    for (; x + 16 <= w; x += 16) {
        _mm_storeu_si128((__m128i *)(blue + x), _mm512_cvtepi32_epi8(
            _mm512_add_epi32(chroma16(b0 + x, b1 + x, vwt, vwb), offset)));
        _mm_storeu_si128((__m128i *)(red + x), _mm512_cvtepi32_epi8(
            _mm512_add_epi32(chroma16(r0 + x, r1 + x, vwt, vwb), offset)));
    }
    if (x < w)
        chroma_bytes_avx2(blue + x, red + x, w - x, b0 + x, b1 + x, r0 + x, r1 + x, wt, wb);
}

/* rgb_bytes_avx2 16 pixels at a time (AVX-512: rgb16's arithmetic from bytes), the last
   w % 16 by rgb_bytes_avx2. */
WIDE512 static void rgb_bytes_avx512(uint8_t *row, Py_ssize_t c, Py_ssize_t w,
                                     const uint8_t *y, const uint8_t *cb, const uint8_t *cr,
                                     const float *k, int pad)
{
    const __m512 vk[4] = {_mm512_set1_ps(k[0]), _mm512_set1_ps(k[1]), _mm512_set1_ps(k[2]),
                          _mm512_set1_ps(k[3])};
    int padded = c == 4 && pad >= 0 && pad <= 255;
    const __m512i vpad = _mm512_set1_epi32(padded ? pad : 0);
    const __m512i offset = _mm512_set1_epi32(128);
    Py_ssize_t x = 0;
    for (; x + 16 <= w; x += 16) {
        __m512i l = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(y + x)));
        __m512 xb = _mm512_cvtepi32_ps(_mm512_sub_epi32(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cb + x))), offset));
        __m512 xr = _mm512_cvtepi32_ps(_mm512_sub_epi32(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cr + x))), offset));
        __m512i r = _mm512_add_epi32(l, _mm512_srai_epi32(colour_term16(vk[0], xr), 6));
        __m512i g = _mm512_add_epi32(l, _mm512_srai_epi32(
            _mm512_add_epi32(colour_term16(vk[1], xb), colour_term16(vk[2], xr)), 6));
        __m512i b = _mm512_add_epi32(l, _mm512_srai_epi32(colour_term16(vk[3], xb), 6));
        store16(row + c * x, c, !padded,
                _mm512_packus_epi16(_mm512_packs_epi32(r, g), _mm512_packs_epi32(b, vpad)));
    }
    if (x < w)
        rgb_bytes_avx2(row + c * x, c, w - x, y + x, cb + x, cr + x, k, pad);
}

/* The thresholds and clamp of one filter, as 16 lanes of 16 bits. */
typedef struct {
    __m256i alpha, beta, tc, minus_tc;
} EdgeLanes;

AVX2_INLINE EdgeLanes edge_lanes(int alpha, int beta, int tc)
{
    return (EdgeLanes){_mm256_set1_epi16((short)alpha), _mm256_set1_epi16((short)beta),
                       _mm256_set1_epi16((short)tc), _mm256_set1_epi16((short)-tc)};
}

/* edge_delta of 16 edges (p1, p0, q0, q1: 16 lanes of 16 bits each) applied: p0 + delta and
   q0 - delta packed (saturated: clamped to 0..255) as the 16 bytes of p0, then those of q0. */
AVX2_INLINE __m256i edges16(__m256i p1, __m256i p0, __m256i q0, __m256i q1, EdgeLanes t)
{
    __m256i active = _mm256_and_si256(
        _mm256_cmpgt_epi16(t.alpha, _mm256_abs_epi16(_mm256_sub_epi16(p0, q0))),
        _mm256_and_si256(_mm256_cmpgt_epi16(t.beta, _mm256_abs_epi16(_mm256_sub_epi16(p1, p0))),
                         _mm256_cmpgt_epi16(t.beta, _mm256_abs_epi16(_mm256_sub_epi16(q1, q0)))));
    __m256i sum = _mm256_add_epi16(_mm256_slli_epi16(_mm256_sub_epi16(q0, p0), 2),
                                   _mm256_sub_epi16(p1, q1));
    __m256i d = _mm256_srai_epi16(_mm256_add_epi16(sum, _mm256_set1_epi16(4)), 3);
    d = _mm256_and_si256(_mm256_min_epi16(_mm256_max_epi16(d, t.minus_tc), t.tc), active);
    return _mm256_permute4x64_epi64(
        _mm256_packus_epi16(_mm256_add_epi16(p0, d), _mm256_sub_epi16(q0, d)), 0xD8);
}

/* 16 bytes at p as 16 lanes of 16 bits. */
AVX2_INLINE __m256i widen16(const uint8_t *p)
{
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* edge_lines 16 samples at a time (the last n % 16 by edge_lines). */
FUSED static void edge_lines_avx2(const uint8_t *r1, uint8_t *r0, uint8_t *t0,
                                  const uint8_t *t1, Py_ssize_t n, int alpha, int beta, int tc)
{
    EdgeLanes t = edge_lanes(alpha, beta, tc);
    Py_ssize_t x = 0;
    for (; x + 16 <= n; x += 16) {
        __m256i both = edges16(widen16(r1 + x), widen16(r0 + x), widen16(t0 + x),
                               widen16(t1 + x), t);
        _mm_storeu_si128((__m128i *)(r0 + x), _mm256_castsi256_si128(both));
        _mm_storeu_si128((__m128i *)(t0 + x), _mm256_extracti128_si256(both, 1));
    }
    if (x < n)
        edge_lines(r1 + x, r0 + x, t0 + x, t1 + x, n - x, alpha, beta, tc);
}

/* 16 quads (p1 p0 q0 q1; a: the first 8, b: the last 8, 4 bytes each) filtered by edges16:
   each vector's quads transposed in its 128-bit lanes (4x4 bytes: p1 p1 p1 p1 p0 .. q1), the
   two vectors' dwords interleaved so that one holds p1 and p0 of all 16 (in the order 0-3,
   8-11, 4-7, 12-15), the other q0 and q1; filtered; and every step undone in reverse. */
AVX2_INLINE void quads16(__m256i *a, __m256i *b, EdgeLanes t)
{
    const __m256i transpose = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11,
                                               15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3,
                                               7, 11, 15);
    __m256i x = _mm256_shuffle_epi8(*a, transpose), y = _mm256_shuffle_epi8(*b, transpose);
    /* p1 (16 bytes) then p0; q0 then q1 */
    __m256i ps = _mm256_permute4x64_epi64(_mm256_unpacklo_epi32(x, y), 0xD8);
    __m256i qs = _mm256_permute4x64_epi64(_mm256_unpackhi_epi32(x, y), 0xD8);
    __m256i both = edges16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(ps)),
                           _mm256_cvtepu8_epi16(_mm256_extracti128_si256(ps, 1)),
                           _mm256_cvtepu8_epi16(_mm256_castsi256_si128(qs)),
                           _mm256_cvtepu8_epi16(_mm256_extracti128_si256(qs, 1)), t);
    ps = _mm256_permute4x64_epi64(_mm256_permute2x128_si256(ps, both, 0x20), 0xD8);
    qs = _mm256_permute4x64_epi64(_mm256_permute2x128_si256(both, qs, 0x31), 0xD8);
    ps = _mm256_shuffle_epi32(ps, 0xD8);
    qs = _mm256_shuffle_epi32(qs, 0xD8);
    *a = _mm256_shuffle_epi8(_mm256_unpacklo_epi64(ps, qs), transpose);
    *b = _mm256_shuffle_epi8(_mm256_unpackhi_epi64(ps, qs), transpose);
}

/* quads16 of the 16 quads one after another at q (64 bytes). */
AVX2_INLINE void filter_quads16(uint8_t *q, EdgeLanes t)
{
    __m256i a = _mm256_loadu_si256((const __m256i *)q);
    __m256i b = _mm256_loadu_si256((const __m256i *)(q + 32));
    quads16(&a, &b, t);
    _mm256_storeu_si256((__m256i *)q, a);
    _mm256_storeu_si256((__m256i *)(q + 32), b);
}

/* The 8 quads at g, g + step, ... g + 7 step as one vector. */
AVX2_INLINE __m256i gather_quads8(const uint8_t *g, Py_ssize_t step)
{
    __m128i lo = _mm_cvtsi32_si128((int)ld_u32(g));
    lo = _mm_insert_epi32(lo, (int)ld_u32(g + step), 1);
    lo = _mm_insert_epi32(lo, (int)ld_u32(g + 2 * step), 2);
    lo = _mm_insert_epi32(lo, (int)ld_u32(g + 3 * step), 3);
    __m128i hi = _mm_cvtsi32_si128((int)ld_u32(g + 4 * step));
    hi = _mm_insert_epi32(hi, (int)ld_u32(g + 5 * step), 1);
    hi = _mm_insert_epi32(hi, (int)ld_u32(g + 6 * step), 2);
    hi = _mm_insert_epi32(hi, (int)ld_u32(g + 7 * step), 3);
    return _mm256_set_m128i(hi, lo);
}

/* gather_quads8 undone: the vector's 8 quads put back at g, g + step, ... */
AVX2_INLINE void scatter_quads8(uint8_t *g, Py_ssize_t step, __m256i v)
{
    __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    st_u32(g, (uint32_t)_mm_cvtsi128_si32(lo));
    st_u32(g + step, (uint32_t)_mm_extract_epi32(lo, 1));
    st_u32(g + 2 * step, (uint32_t)_mm_extract_epi32(lo, 2));
    st_u32(g + 3 * step, (uint32_t)_mm_extract_epi32(lo, 3));
    st_u32(g + 4 * step, (uint32_t)_mm_cvtsi128_si32(hi));
    st_u32(g + 5 * step, (uint32_t)_mm_extract_epi32(hi, 1));
    st_u32(g + 6 * step, (uint32_t)_mm_extract_epi32(hi, 2));
    st_u32(g + 7 * step, (uint32_t)_mm_extract_epi32(hi, 3));
}

/* edge_delta of the 4 edges held as quads p1 p0 q0 q1 in 16 bytes at q, applied in place:
   in each quad's four 16-bit lanes, v - (v rotated by one lane) = p1 - p0, p0 - q0, q0 - q1,
   q1 - p1; the first three, made absolute, against beta, alpha, beta (the fourth against
   32767, always below: an edge is active where its 64 bits all pass); 4 (q0 - p0) + (p1 - q1)
   is the sum (p1 - p0) - 3 (p0 - q0) + (q0 - q1). */
AVX2_INLINE void filter_quads4(uint8_t *q, __m256i thresholds, __m256i tc)
{
    const __m256i rotate = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
                                            2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8,
                                            9);
    const __m256i weights = _mm256_setr_epi16(1, -3, 1, 0, 1, -3, 1, 0, 1, -3, 1, 0, 1, -3, 1,
                                              0);
    /* the low 16 bits of each quad's first dword into its lanes 1 and 2, signed + and - */
    const __m256i spread = _mm256_setr_epi8(-1, -1, 0, 1, 0, 1, -1, -1, -1, -1, 8, 9, 8, 9, -1,
                                            -1, -1, -1, 0, 1, 0, 1, -1, -1, -1, -1, 8, 9, 8, 9,
                                            -1, -1);
    const __m256i signs = _mm256_setr_epi16(0, 1, -1, 0, 0, 1, -1, 0, 0, 1, -1, 0, 0, 1, -1, 0);
    __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)q));
    __m256i diff = _mm256_sub_epi16(v, _mm256_shuffle_epi8(v, rotate));
    __m256i pass = _mm256_cmpgt_epi16(thresholds, _mm256_abs_epi16(diff));
    __m256i active = _mm256_cmpeq_epi64(pass, _mm256_set1_epi32(-1));
    __m256i pairs = _mm256_madd_epi16(diff, weights); /* per quad: (p1-p0) - 3(p0-q0), q0-q1 */
    __m256i sum = _mm256_add_epi32(pairs, _mm256_shuffle_epi32(pairs, 0xB1));
    __m256i d = _mm256_srai_epi32(_mm256_add_epi32(sum, _mm256_set1_epi32(4)), 3);
    d = _mm256_min_epi32(_mm256_max_epi32(d, _mm256_sub_epi32(_mm256_setzero_si256(), tc)), tc);
    d = _mm256_and_si256(d, active);
    __m256i moved = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_shuffle_epi8(d, spread), signs));
    __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(moved, moved), 0x08);
    _mm_storeu_si128((__m128i *)q, _mm256_castsi256_si128(bytes));
}

/* `count` quads from q filtered: 16 at a time (filter_quads16), then 4 (filter_quads4), the
   last count % 4 through a copy of 4. */
FUSED static void filter_quads(uint8_t *q, Py_ssize_t count, int alpha, int beta, int tc)
{
    EdgeLanes lanes = edge_lanes(alpha, beta, tc);
    Py_ssize_t j = 0;
    for (; j + 16 <= count; j += 16)
        filter_quads16(q + 4 * j, lanes);
    const __m256i thresholds = _mm256_setr_epi16(
        (short)beta, (short)alpha, (short)beta, 32767, (short)beta, (short)alpha, (short)beta,
        32767, (short)beta, (short)alpha, (short)beta, 32767, (short)beta, (short)alpha,
        (short)beta, 32767);
    const __m256i vtc = _mm256_set1_epi32(tc);
    for (; j + 4 <= count; j += 4)
        filter_quads4(q + 4 * j, thresholds, vtc);
    if (j == count)
        return;
    uint8_t tail[16] = {0};
    memcpy(tail, q + 4 * j, (size_t)(4 * (count - j)));
    filter_quads4(tail, thresholds, vtc);
    memcpy(q + 4 * j, tail, (size_t)(4 * (count - j)));
}

/* edges_along by quads16: the edges' four samples are one quad after another for period 4
   (filtered where they lie), else 16 at a time gathered into registers and put back, the last
   count % 16 through `scratch` (64 bytes). */
FUSED static void edges_along_avx2(uint8_t *s, Py_ssize_t n, Py_ssize_t period, int alpha,
                                   int beta, int tc, uint8_t *scratch)
{
    Py_ssize_t count = n >= 2 ? (n - 2) / period : 0; /* e = (j + 1) period, e + 1 < n */
    uint8_t *g = s + period - 2;
    if (period == 4) {
        filter_quads(g, count, alpha, beta, tc);
        return;
    }
    EdgeLanes lanes = edge_lanes(alpha, beta, tc);
    Py_ssize_t j = 0;
    for (; j + 16 <= count; j += 16) {
        uint8_t *at = g + j * period;
        __m256i a = gather_quads8(at, period), b = gather_quads8(at + 8 * period, period);
        quads16(&a, &b, lanes);
        scatter_quads8(at, period, a);
        scatter_quads8(at + 8 * period, period, b);
    }
    for (Py_ssize_t i = j; i < count; i++)
        memcpy(scratch + 4 * (i - j), g + i * period, 4);
    filter_quads(scratch, count - j, alpha, beta, tc);
    for (Py_ssize_t i = j; i < count; i++)
        memcpy(g + i * period, scratch + 4 * (i - j), 4);
}

#endif

/* deblock_ycc's four steps on its ring of rows, by the kernels above (simd: simd_level; the
   vertical and horizontal edges in AVX2 at either level) or the plain loops: the same bits. */

/* The colour_rows level rows of c channels take in deblock_ycc: 0 (the plain loops), 1 (AVX2)
   or 2 (AVX-512 for the rounding and the conversion). */
static int simd_level(Py_ssize_t c)
{
#if FUSED_PRODUCT
    return simd_rows(c) ? simd_colour : 0;
#else
    return simd_rows(c);
#endif
}

/* Ring row of Y' bytes from a patch layout's pixel row (`at`: its first float; patch, per_row
   as store_bytes takes them), rounded as store_bytes rounds it (offset 0). The AVX2 kernel
   reads patches of 4 and 8 where they lie; other sides, and the plain loop, go through the
   line `mline` (per_row * patch floats). */
static void ring_luma(int simd, uint8_t *dst, Py_ssize_t w, const char *matrix, Py_ssize_t at,
                      Py_ssize_t patch, Py_ssize_t per_row, float *mline)
{
#if FUSED_PRODUCT
    void (*row_kernel)(uint8_t *, Py_ssize_t, const char *, Py_ssize_t, Py_ssize_t) =
        simd == 2 ? luma_bytes_avx512 : luma_bytes_avx2;
    if (simd && (patch == 4 || patch == 8)) {
        row_kernel(dst, w, matrix + 4 * at, patch == 8 ? 4 * 64 : 4 * 32, patch == 8 ? 16 : 64);
        return;
    }
#endif
    patch_row(matrix, at, per_row, patch, (char *)mline);
#if FUSED_PRODUCT
    if (simd) {
        row_kernel(dst, w, (const char *)mline, 32, 16);
        return;
    }
#endif
    bytes_row(dst, 1, w, (const char *)mline, 0.5f);
}

/* Ring rows of Cb and Cr bytes of output row y blended from the kept chroma (blue and red:
   w floats of scratch for the plain loops); -1 as chroma_row. */
static int ring_chroma(int simd, WideChroma *wc, Py_ssize_t y, uint8_t *cb, uint8_t *cr,
                       Py_ssize_t w, float *blue, float *red)
{
#if FUSED_PRODUCT
    if (simd) {
        const float *b0, *b1;
        double wt, wb;
        if (blend_rows(wc, y, &b0, &b1, &wt, &wb) < 0)
            return -1;
        (simd == 2 ? chroma_bytes_avx512 : chroma_bytes_avx2)(cb, cr, w, b0, b1, b0 + wc->w,
                                                              b1 + wc->w, wt, wb);
        return 0;
    }
#endif
    if (chroma_row(wc, y, blue, red) < 0)
        return -1;
    chroma_line_bytes(blue, w, cb);
    chroma_line_bytes(red, w, cr);
    return 0;
}

#if FUSED_PRODUCT
/* double_chroma's row on CPUs with AVX2 and FMA (simd: simd_rows' level, c = 3 or 4): Cb and
   Cr blended into lines of bytes (2 w) as deblock_ycc blends them (ring_chroma: the bits of
   chroma_row and chroma_bytes, in registers), then put into channels 1 and 2 of the row. */
static int chroma_row_bytes(int simd, WideChroma *wc, Py_ssize_t y, uint8_t *row, Py_ssize_t c,
                            Py_ssize_t w, uint8_t *lines)
{
    uint8_t *cb = lines, *cr = lines + w;
    if (ring_chroma(simd, wc, y, cb, cr, w, NULL, NULL) < 0)
        return -1;
    channel_line_put(row + 1, (int)c, w, cb);
    channel_line_put(row + 2, (int)c, w, cr);
    return 0;
}
#endif

/* The vertical edges of a ring row of n bytes (scratch: n + 16 bytes for the AVX2 kernel). */
static void ring_vertical(int simd, uint8_t *s, Py_ssize_t n, const EdgeFilter *f,
                          uint8_t *scratch)
{
#if FUSED_PRODUCT
    if (simd) {
        edges_along_avx2(s, n, f->period, f->alpha, f->beta, f->tc, scratch);
        return;
    }
#endif
    (void)scratch;
    edges_along(s, n, f->period, f->alpha, f->beta, f->tc);
}

/* One horizontal edge across four ring rows of n bytes. */
static void ring_horizontal(int simd, const uint8_t *r1, uint8_t *r0, uint8_t *t0,
                            const uint8_t *t1, Py_ssize_t n, const EdgeFilter *f)
{
#if FUSED_PRODUCT
    if (simd) {
        edge_lines_avx2(r1, r0, t0, t1, n, f->alpha, f->beta, f->tc);
        return;
    }
#endif
    edge_lines(r1, r0, t0, t1, n, f->alpha, f->beta, f->tc);
}

/* A pixel row of c channels converted from ring rows of Y', Cb and Cr bytes (luma, blue,
   red: w floats and planar 3w bytes of scratch for the plain loops). */
static void ring_convert(int simd, uint8_t *row, Py_ssize_t c, Py_ssize_t w, const uint8_t *y,
                         const uint8_t *cb, const uint8_t *cr, const float *k, int pad,
                         float *luma, float *blue, float *red, uint8_t *planar)
{
#if FUSED_PRODUCT
    if (simd) {
        (simd == 2 ? rgb_bytes_avx512 : rgb_bytes_avx2)(row, c, w, y, cb, cr, k, pad);
        return;
    }
#endif
    ycc_floats(y, cb, cr, w, luma, blue, red);
    rgb_line(row, c, w, luma, blue, red, k, planar, pad);
}

#if FUSED_PRODUCT
/* ycc_line on CPUs with AVX2 and FMA (simd: simd_rows' level, c = 3 or 4): the row's Y', Cb
   and Cr bytes split into lines (3 w bytes), converted back into it by deblock_ycc's
   conversion (ring_convert: the bits of ycc_floats and rgb_line, in registers). */
static void ycc_line_bytes(int simd, uint8_t *row, Py_ssize_t c, Py_ssize_t w, const float *k,
                           uint8_t *lines, int pad)
{
    uint8_t *y = lines, *cb = y + w, *cr = cb + w;
    channel_line_get(row, (int)c, w, y);
    channel_line_get(row + 1, (int)c, w, cb);
    channel_line_get(row + 2, (int)c, w, cr);
    ring_convert(simd, row, c, w, y, cb, cr, k, pad, NULL, NULL, NULL, NULL);
}
#endif

/* The arguments deblock_ycc and restore_ycc share (the "ycc band arguments": out, y0, y1,
   filters, k, cb, cr, top, first, height, matrix, patch, per_row, pad) and what ycc_band_open
   makes of them. Zeroed before the arguments are parsed into it; ycc_band_release frees it
   whatever ycc_band_open reached. */
typedef struct {
    PyObject *o_out, *o_filters, *o_k, *o_cb, *o_cr, *o_matrix, *o_cb2, *o_cr2;
    Py_ssize_t y0, y1, top, first, height, patch, per_row, pad;
    Arr out, fa, cb, cr, matrix, cb2, cr2;
    /* h: the image's rows, of which out holds [top, top + out's rows); nf: the filters */
    Py_ssize_t h, w, c, nf;
    int chroma;
    float k[4];
    EdgeFilter *f;
    float *mline;  /* patch_luma's line buffer, NULL without matrix */
    WideChroma wc; /* the chroma rows (get_chroma), or only wc.w without cb and cr */
} YccBand;

/* Check the ycc band arguments of `who` (deblock_ycc, restore_ycc) as both take them: pad
   (outside 0..255: none), 0 <= top <= y0 (top = 0 without height), out's rows [y0, y1), k,
   filters (int64 (nf, 5), nf <= out's channels, y1 <= h; a distinct channel each, below
   `channels` too, every period >= 4), matrix (`patch_luma`) and cb, cr (`get_chroma`). -1
   with an exception set if one is wrong. */
static int ycc_band_open(YccBand *b, const char *who, Py_ssize_t channels)
{
    if (b->pad < 0 || b->pad > 255)  /* no pad; the row kernels take it as an int */
        b->pad = -1;
    if (b->top < 0 || b->y0 < b->top || (b->height < 0 && b->top != 0)) {
        PyErr_Format(PyExc_ValueError, "%s: needs 0 <= top <= y0, and top = 0 without height",
                     who);
        return -1;
    }
    b->chroma = b->o_cb != Py_None || b->o_cr != Py_None;
    if (get_image(b->o_out, &b->out, b->y0 - b->top, b->y1 - b->top) < 0
        || get_constants(b->o_k, b->k) < 0
        || get_array(b->o_filters, &b->fa, "filters", 2, T_I64, A_CONTIGUOUS) < 0)
        return -1;
    b->h = b->height < 0 ? b->out.shape[0] : b->height;
    b->w = b->out.shape[1];
    b->c = b->out.shape[2];
    b->nf = b->fa.shape[0];
    if (b->fa.shape[1] != 5 || b->nf > b->c || b->y1 > b->h) {
        PyErr_Format(PyExc_ValueError, "%s: filters must be (k <= channels, 5), y1 <= height",
                     who);
        return -1;
    }
    if ((b->f = edge_filters(&b->fa, b->c, who)) == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < b->nf; i++)
        if (b->f[i].period < 4 || b->f[i].c >= channels) {
            PyErr_Format(PyExc_ValueError, "%s: every filter's period must be >= 4, its "
                         "channel below %zd", who, channels < b->c ? channels : b->c);
            return -1;
        }
    if (patch_luma(b->o_matrix, &b->matrix, b->y1 - b->top, b->patch, b->per_row, b->w, who,
                   &b->mline) < 0)
        return -1;
    if (b->chroma)
        return get_chroma(b->o_cb, b->o_cr, b->o_cb2, b->o_cr2, &b->cb, &b->cr, &b->cb2,
                          &b->cr2, &b->out, b->y0, b->y1, b->first,
                          b->h, &b->wc);
    b->wc.w = b->w; /* no doubled rows: line_buffers gives the line buffers only */
    return 0;
}

static void ycc_band_release(YccBand *b)
{
    free(b->wc.wide);
    free(b->f);
    free(b->mline);
    release(&b->out);
    release(&b->fa);
    release(&b->cb);
    release(&b->cr);
    release(&b->cb2);
    release(&b->cr2);
    release(&b->matrix);
}

PyDoc_STRVAR(deblock_ycc_doc,
"deblock_ycc(out, y0, y1, filters, k, cb=None, cr=None) -> None\n\n"
"Rows [y0, y1) of out ((h, w, >= 3) uint8 C-contiguous, Y' in channel 0) filtered (spec\n"
"section 5.4) and converted to RGB in one pass: row by row, `double_chroma` (with cb and cr,\n"
"h/2 x w/2 float32; without, Cb and Cr are in out), `deblock`'s vertical edges, its horizontal\n"
"edges as soon as their four rows are in (filters as for `deblock`, every period >= 4), and\n"
"`convert_ycc` of each row once no edge reads or writes it: the bits of those kernels one\n"
"after the other. No horizontal edge may cross y0 or y1 (y mod period not in period - 1, 0, 1,\n"
"unless y is 0 or h), so that bands so cut can run at once.\n"
"Rows of a band alone (as store_rgb): out's row 0 is the image's row `top`, cb and cr hold\n"
"the chroma planes' rows from `first` on, and the image has `height` rows (-1: out's rows,\n"
"top = 0); y0, y1 and the edges are the image's rows. With matrix (a patch layout's band from\n"
"row `top` on, as store_bytes takes it), Y' comes from it, rounded as store_bytes rounds it,\n"
"instead of from out. pad (0..255, out of 4 channels): channel 3 of every row converted\n"
"becomes pad, as store_rgb writes Pillow's RGBX (else it is left as it is: alpha). cb2 and\n"
"cr2: the chroma rows that follow cb's and cr's, as double_chroma takes them.");

static PyObject *deblock_ycc(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "filters", "k", "cb", "cr", "top", "first",
                            "height", "matrix", "patch", "per_row", "pad", "cb2", "cr2", NULL};
    YccBand b = {.o_cb = Py_None, .o_cr = Py_None, .o_matrix = Py_None, .height = -1,
                 .pad = -1, .o_cb2 = Py_None, .o_cr2 = Py_None};
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnOO|OOnnnOnnnOO:deblock_ycc", names,
                                     &b.o_out, &b.y0, &b.y1, &b.o_filters, &b.o_k, &b.o_cb,
                                     &b.o_cr, &b.top, &b.first, &b.height, &b.o_matrix,
                                     &b.patch, &b.per_row, &b.pad, &b.o_cb2, &b.o_cr2))
        return NULL;
    /* filters of any of out's channels (alpha too) */
    if (ycc_band_open(&b, "deblock_ycc", PY_SSIZE_T_MAX) < 0
        || check_boundary(b.y0, b.h, b.f, b.nf) < 0 || check_boundary(b.y1, b.h, b.f, b.nf) < 0)
        goto done;
    /* the loop's values as locals (b's address escaped: a call could change its fields) */
    Py_ssize_t y0 = b.y0, y1 = b.y1, top = b.top, w = b.w, c = b.c, nf = b.nf,
               patch = b.patch, per_row = b.per_row, pad = b.pad;
    int chroma = b.chroma;
    const EdgeFilter *f = b.f;
    const float *k = b.k;
    float *mline = b.mline;
    /* line buffers, then YCC_RING rows of each of Y', Cb and Cr as bytes (ring[ch][y % ring]),
       then w + 16 bytes of scratch (ring_vertical) */
    if (w > PY_SSIZE_T_MAX / (4 * (3 * YCC_RING + 1)) - 64
        || line_buffers(&b.wc, w + ((3 * YCC_RING + 1) * w + 16 + 3) / 4) == NULL)
        goto done;
    float *blue = b.wc.wide + 4 * w, *red = blue + w, *luma = red + 2 * w;
    uint8_t *planar = (uint8_t *)(red + w), *rows = (uint8_t *)(luma + w);
    uint8_t *scratch = rows + 3 * YCC_RING * w;
#define RING(ch, y) (rows + ((ch) * YCC_RING + (y) % YCC_RING) * w)
    Py_ssize_t row = b.out.strides[0], step = b.out.strides[1];
    uint8_t *base = (uint8_t *)b.out.data;
    int error = 0, simd = simd_level(c);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = y0; y < y1 && !error; y++) {
        uint8_t *line = base + (y - top) * row;
        if (mline != NULL) {
            Py_ssize_t gy = (y - top) / patch, py = (y - top) % patch;
            ring_luma(simd, RING(0, y), w, b.matrix.data, gy * per_row * patch * patch
                      + py * patch, patch, per_row, mline);
        } else {
            channel_line(line, c, 0, w, RING(0, y));
        }
        if (chroma) {
            error = ring_chroma(simd, &b.wc, y, RING(1, y), RING(2, y), w, blue, red);
            if (error)
                break;
        } else {
            channel_line(line, c, 1, w, RING(1, y));
            channel_line(line, c, 2, w, RING(2, y));
        }
        for (Py_ssize_t i = 0; i < nf; i++) {
            if (f[i].c < 3)
                ring_vertical(simd, RING(f[i].c, y), w, &f[i], scratch);
            else /* alpha: in place in out, which the conversion leaves alone */
                deblock_row(line + f[i].c, step, w, f[i].period, f[i].alpha, f[i].beta,
                            f[i].tc);
        }
        /* edge e = y - 1 (e + 1 = y < h); check_boundary puts rows e - 2 .. e + 1 in the band */
        for (Py_ssize_t i = 0; i < nf; i++) {
            if (y - 1 < f[i].period || (y - 1) % f[i].period != 0)
                continue;
            Py_ssize_t ch = f[i].c;
            if (ch < 3)
                ring_horizontal(simd, RING(ch, y - 3), RING(ch, y - 2), RING(ch, y - 1),
                                RING(ch, y), w, &f[i]);
            else
                deblock_edge_row(base + ch, row, step, y - 1 - top, 0, w, f[i].period,
                                 f[i].alpha, f[i].beta, f[i].tc, NULL);
        }
        if (y - YCC_LAG >= y0) {
            Py_ssize_t z = y - YCC_LAG;
            ring_convert(simd, base + (z - top) * row, c, w, RING(0, z), RING(1, z),
                         RING(2, z), k, (int)pad, luma, blue, red, planar);
        }
    }
    for (Py_ssize_t z = y1 - YCC_LAG > y0 ? y1 - YCC_LAG : y0; z < y1 && !error; z++)
        ring_convert(simd, base + (z - top) * row, c, w, RING(0, z), RING(1, z), RING(2, z),
                     k, (int)pad, luma, blue, red, planar);
#undef RING
    Py_END_ALLOW_THREADS
    if (error)
        PyErr_SetString(PyExc_RuntimeError, "deblock_ycc: chroma row out of range");
    else
        result = Py_NewRef(Py_None);
done:
    ycc_band_release(&b);
    return result;
}

/* ------------------------------------------------------------------------ decoding: restoration
   Format version 6's restoration filter (spec §5.6, codec/restoration.py): per sample the
   activity class from the 3x3 sum of |horizontal| + |vertical| Laplacian, then the
   point-symmetric Wiener filter on the 7x7 diamond with that class's 12 coefficients, in
   integers, reading the unfiltered channel with its edges replicated. */

#define RESTORE_REACH 3
#define RESTORE_TAPS 12
#define RESTORE_CLASSES 4

/* A band's rows y0 - 3 .. y1 + 2 of the channel (clamped to 0 .. height - 1, read from src's
   row r - top), each with 3 replicated samples either side: (n + 6) rows of w + 6 bytes. */
static void restore_pad(uint8_t *pad, const uint8_t *src, Py_ssize_t src_row,
                        Py_ssize_t src_step, Py_ssize_t w, Py_ssize_t y0, Py_ssize_t n,
                        Py_ssize_t top, Py_ssize_t height)
{
    Py_ssize_t pw = w + 2 * RESTORE_REACH;
    for (Py_ssize_t i = 0; i < n + 2 * RESTORE_REACH; i++) {
        Py_ssize_t y = y0 - RESTORE_REACH + i;
        y = y < 0 ? 0 : y >= height ? height - 1 : y;
        const uint8_t *s = src + (y - top) * src_row;
        uint8_t *d = pad + i * pw;
        if (src_step == 1)
            memcpy(d + RESTORE_REACH, s, (size_t)w);
        else  /* a channel of an image's rows, read where it lies */
            for (Py_ssize_t x = 0; x < w; x++)
                d[RESTORE_REACH + x] = s[x * src_step];
        for (int k = 0; k < RESTORE_REACH; k++) {
            d[k] = d[RESTORE_REACH];
            d[RESTORE_REACH + w + k] = d[RESTORE_REACH + w - 1];
        }
    }
}

/* The filter sum of one sample from the 7 padded rows around it (r[3] its own row) with
   coefficients c (12 taps, then their sum at c[12]): sum_k c_k (s[p + o_k] + s[p - o_k])
   - 2 s[p] sum_k c_k, which is sum_k c_k (s[p + o_k] + s[p - o_k] - 2 s[p]) (spec §5.6). */
#define RESTORE_SUM(r, j, c)                                                                   \
    ((c)[0] * ((int32_t)(r)[3][(j) + 1] + (r)[3][(j) - 1])                                     \
     + (c)[1] * ((int32_t)(r)[3][(j) + 2] + (r)[3][(j) - 2])                                   \
     + (c)[2] * ((int32_t)(r)[3][(j) + 3] + (r)[3][(j) - 3])                                   \
     + (c)[3] * ((int32_t)(r)[4][(j) - 2] + (r)[2][(j) + 2])                                   \
     + (c)[4] * ((int32_t)(r)[4][(j) - 1] + (r)[2][(j) + 1])                                   \
     + (c)[5] * ((int32_t)(r)[4][(j)] + (r)[2][(j)])                                           \
     + (c)[6] * ((int32_t)(r)[4][(j) + 1] + (r)[2][(j) - 1])                                   \
     + (c)[7] * ((int32_t)(r)[4][(j) + 2] + (r)[2][(j) - 2])                                   \
     + (c)[8] * ((int32_t)(r)[5][(j) - 1] + (r)[1][(j) + 1])                                   \
     + (c)[9] * ((int32_t)(r)[5][(j)] + (r)[1][(j)])                                           \
     + (c)[10] * ((int32_t)(r)[5][(j) + 1] + (r)[1][(j) - 1])                                  \
     + (c)[11] * ((int32_t)(r)[6][(j)] + (r)[0][(j)])                                          \
     - 2 * (c)[12] * (int32_t)(r)[3][(j)])

static inline uint8_t restore_clamp(int32_t centre, int32_t sum)
{
    int32_t v = centre + ((sum + 64) >> 7);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Rows [0, n) of the band from its padded rows: lap holds (n + 2) x (w + 2) Laplacian sums
   (rows and columns -1 .. n, -1 .. w), col (w + 2) column sums of three of them, cls w
   classes. coef: 16 per class (12 taps, their sum, 3 unused); bounds padded to 3 with a value
   above every activity. The taps are written out (RESTORE_SUM) and every class's sum is
   taken, then the sample's selected, so that the coefficients are loop-invariant and the
   loops vectorize (HOT: an AVX2 copy where the CPU has it; the same integers). */
HOT static void restore_band_rows(const uint8_t *pad, Py_ssize_t w, Py_ssize_t n, uint8_t *out,
                              Py_ssize_t out_row, Py_ssize_t out_step, const int32_t *bounds,
                              Py_ssize_t classes, const int32_t *coef, int32_t *lap,
                              int32_t *col, uint8_t *cls, uint8_t *row)
{
    Py_ssize_t pw = w + 2 * RESTORE_REACH, lw = w + 2;
    if (classes > 1) {
        for (Py_ssize_t i = 0; i < n + 2; i++) {
            const uint8_t *p = pad + (i + RESTORE_REACH - 1) * pw + RESTORE_REACH - 1;
            int32_t *l = lap + i * lw;
            for (Py_ssize_t j = 0; j < lw; j++) {
                int32_t c2 = 2 * (int32_t)p[j];
                int32_t hz = c2 - p[j - 1] - p[j + 1], vt = c2 - p[j - pw] - p[j + pw];
                l[j] = (hz < 0 ? -hz : hz) + (vt < 0 ? -vt : vt);
            }
        }
    }
    int32_t b0 = bounds[0], b1 = bounds[1], b2 = bounds[2];
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *r[7];
        for (int k = 0; k < 7; k++)
            r[k] = pad + (i + k) * pw + RESTORE_REACH;
        /* a contiguous row, copied to a strided output (a channel of an image) after */
        uint8_t *o = out_step == 1 ? out + i * out_row : row;
        if (classes == 1) {
            const int32_t *c = coef;
            for (Py_ssize_t j = 0; j < w; j++)
                o[j] = restore_clamp(r[3][j], RESTORE_SUM(r, j, c));
        } else {
            const int32_t *l0 = lap + i * lw, *l1 = l0 + lw, *l2 = l1 + lw;
            for (Py_ssize_t j = 0; j < lw; j++)
                col[j] = l0[j] + l1[j] + l2[j];
            for (Py_ssize_t j = 0; j < w; j++) {
                int32_t a = col[j] + col[j + 1] + col[j + 2];
                cls[j] = (uint8_t)((a >= b0) + (a >= b1) + (a >= b2));
            }
            const int32_t *c0 = coef, *c1 = coef + 16, *c2 = coef + 32, *c3 = coef + 48;
            for (Py_ssize_t j = 0; j < w; j++) {
                int32_t s0 = RESTORE_SUM(r, j, c0), s1 = RESTORE_SUM(r, j, c1);
                int32_t s2 = RESTORE_SUM(r, j, c2), s3 = RESTORE_SUM(r, j, c3);
                int32_t k = cls[j];
                int32_t sum = k == 0 ? s0 : k == 1 ? s1 : k == 2 ? s2 : s3;
                o[j] = restore_clamp(r[3][j], sum);
            }
        }
        if (out_step != 1) {
            uint8_t *dst = out + i * out_row;
            for (Py_ssize_t j = 0; j < w; j++)
                dst[j * out_step] = row[j];
        }
    }
}

#if FUSED_PRODUCT
/* restore_band_rows in AVX2 (where simd_colour is set: colour_rows >= 1), 16 samples at a time
   and the same integers: per sample the 12 symmetric pair sums s[p + o] + s[p - o] (0 .. 510)
   once, in 16-bit lanes, paired with the next tap's into 32-bit lanes, and the dot product
   with the sample's own class's coefficients by _mm256_madd_epi16, the coefficient pairs
   picked per lane by _mm256_permutevar8x32_epi32 from a table of the 4 classes. The seventh
   pair is (s[p], 1) with (-2 sum_k c_k, 64): the centre term and the rounding. Every product
   is a signed 16 x 16-bit one (|c| <= 64, |-2 sum c| <= 1536) and each madd sums two into
   32 bits, exact; the total (< 2^21) >> 7 fits 16 bits again (< 2^14), so the add of s[p] and
   the clamp are a 16-bit add and an unsigned saturating pack. The activity (<= 9180) is summed
   in 16-bit lanes too: per row of Laplacians the sums of three across, then three such rows
   down. Rows narrower than 16 take the plain loops. */

/* 16 bytes at p as 16 lanes of 16 bits (as widen16, for the restoration's own target). */
static inline __attribute__((target("avx2"), always_inline)) __m256i restore_widen(const uint8_t *p)
{
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* 16 Laplacians |2 s - left - right| + |2 s - up - down| into lap from the samples at p
   (up, down: the same columns of the rows above and below). */
static inline __attribute__((target("avx2"), always_inline)) void restore_laplacians16(
    const uint8_t *up, const uint8_t *p, const uint8_t *down, int16_t *lap)
{
    __m256i c = restore_widen(p), c2 = _mm256_add_epi16(c, c);
    __m256i hz = _mm256_sub_epi16(_mm256_sub_epi16(c2, restore_widen(p - 1)),
                                  restore_widen(p + 1));
    __m256i vt = _mm256_sub_epi16(_mm256_sub_epi16(c2, restore_widen(up)), restore_widen(down));
    _mm256_storeu_si256((__m256i *)lap,
                        _mm256_add_epi16(_mm256_abs_epi16(hz), _mm256_abs_epi16(vt)));
}

/* 16 sums of three Laplacians across (lap[j] + lap[j + 1] + lap[j + 2]) into h3. */
static inline __attribute__((target("avx2"), always_inline)) void restore_across16(
    const int16_t *lap, int16_t *h3)
{
    __m256i s = _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)lap),
                                 _mm256_loadu_si256((const __m256i *)(lap + 1)));
    s = _mm256_add_epi16(s, _mm256_loadu_si256((const __m256i *)(lap + 2)));
    _mm256_storeu_si256((__m256i *)h3, s);
}

/* A row's Laplacians |2 s - left - right| + |2 s - up - down| at columns -1 .. w (w + 2 of
   them, from the padded row p's column -1 on; up and down: the padded rows above and below
   it, from their column -1 on), then their sums of three across into h3 (w). */
__attribute__((target("avx2"))) static void restore_activity_lines_avx2(const uint8_t *up,
                                                                         const uint8_t *p,
                                                                         const uint8_t *down,
                                                                         Py_ssize_t w,
                                                                         int16_t *lap,
                                                                         int16_t *h3)
{
    Py_ssize_t lw = w + 2, j;
    for (j = 0; j + 16 <= lw; j += 16)
        restore_laplacians16(up + j, p + j, down + j, lap + j);
    if (j < lw)  /* the last 16, overlapping: the same values again */
        restore_laplacians16(up + lw - 16, p + lw - 16, down + lw - 16, lap + lw - 16);
    for (j = 0; j + 16 <= w; j += 16)
        restore_across16(lap + j, h3 + j);
    if (j < w)
        restore_across16(lap + w - 16, h3 + w - 16);
}

/* The byte shuffles and blend masks that put 16 samples into their bytes of `step` (3 or 4)
   16-byte chunks from the first sample's byte on (a channel of interleaved pixels): byte q
   of the span takes sample q / step where q % step == 0 and is kept otherwise. */
typedef struct {
    __m128i shuffle[4], select[4];
} RestoreScatter;

static RestoreScatter restore_scatter(int step)
{
    RestoreScatter sc;
    for (int m = 0; m < 4; m++) {
        int8_t shuffle[16], select[16];
        for (int b = 0; b < 16; b++) {
            int q = 16 * m + b, own = q % step == 0 && q / step < 16;
            shuffle[b] = own ? (int8_t)(q / step) : (int8_t)-128;
            select[b] = own ? -1 : 0;
        }
        memcpy(&sc.shuffle[m], shuffle, 16);
        memcpy(&sc.select[m], select, 16);
    }
    return sc;
}

/* 16 samples v into o, o + step, ..., o + 15 step: with step 3 or 4, where the span goes
   on to a 17th sample (its bytes all between two samples of the row, so in the array),
   by rewriting the span's chunks with the other bytes kept as they are; else one by one. */
static inline __attribute__((target("avx2"), always_inline)) void restore_store16(
    uint8_t *o, __m128i v, int step, int inside, const RestoreScatter *sc)
{
    if (step == 1) {
        _mm_storeu_si128((__m128i *)o, v);
    } else if ((step == 3 || step == 4) && inside) {
        for (int m = 0; m < step; m++) {
            __m128i *d = (__m128i *)(o + 16 * m);
            __m128i kept = _mm_loadu_si128(d);
            _mm_storeu_si128(d, _mm_blendv_epi8(kept, _mm_shuffle_epi8(v, sc->shuffle[m]),
                                                sc->select[m]));
        }
    } else {
        uint8_t bytes[16];
        _mm_storeu_si128((__m128i *)bytes, v);
        for (int j = 0; j < 16; j++)
            o[j * step] = bytes[j];
    }
}

/* The byte shuffles that gather 16 samples, every step-th byte (3 or 4) from the first
   on, out of the span's `step` 16-byte chunks: chunk m gives sample j where 0 <= j step -
   16 m < 16; OR-ed together. */
static void restore_gather(__m128i *shuffle, int step)
{
    for (int m = 0; m < step; m++) {
        int8_t bytes[16];
        for (int j = 0; j < 16; j++) {
            int q = j * step - 16 * m;
            bytes[j] = q >= 0 && q < 16 ? (int8_t)q : (int8_t)-128;
        }
        memcpy(&shuffle[m], bytes, 16);
    }
}

/* restore_gather's and restore_scatter's masks for steps 3 and 4 (channel_masks[step - 3]),
   set once by the module's initialization. */
static __m128i channel_gathers[2][4];
static RestoreScatter channel_scatters[2];

static void channel_masks(void)
{
    for (int step = 3; step <= 4; step++) {
        restore_gather(channel_gathers[step - 3], step);
        channel_scatters[step - 3] = restore_scatter(step);
    }
}

/* One channel of a row of w interleaved pixels of step (3 or 4) channels, s its first
   sample, into line (w bytes): 16 at a time where the span goes on to a 17th sample (in the
   row), the rest one by one. */
__attribute__((target("avx2"))) static void channel_line_get(const uint8_t *s, int step,
                                                              Py_ssize_t w, uint8_t *line)
{
    const __m128i *gather = channel_gathers[step - 3];
    Py_ssize_t x = 0;
    for (; x + 16 < w; x += 16) {
        const uint8_t *c = s + x * step;
        __m128i v = _mm_or_si128(
            _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)c), gather[0]),
            _mm_or_si128(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(c + 16)), gather[1]),
                         _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(c + 32)), gather[2])));
        if (step == 4)
            v = _mm_or_si128(v, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(c + 48)),
                                                 gather[3]));
        _mm_storeu_si128((__m128i *)(line + x), v);
    }
    for (; x < w; x++)
        line[x] = s[x * step];
}

/* channel_line_get's inverse: line (w bytes) into the channel, its other bytes kept. */
__attribute__((target("avx2"))) static void channel_line_put(uint8_t *s, int step,
                                                              Py_ssize_t w, const uint8_t *line)
{
    Py_ssize_t x = 0;
    for (; x + 16 < w; x += 16)
        restore_store16(s + x * step, _mm_loadu_si128((const __m128i *)(line + x)), step, 1,
                        &channel_scatters[step - 3]);
    for (; x < w; x++)
        s[x * step] = line[x];
}

/* deblock's vertical edges of a row of w >= 17 interleaved pixels (step 3 or 4 channels) on
   CPUs with AVX2 and FMA: each filtered channel of period >= 4 gathered into a line
   (restore_gather's shuffles), its edges filtered there by deblock_ycc's kernel
   (ring_vertical: the bits of deblock_row), put back (restore_scatter's blends; the bytes of the other channels kept).
   line: 2 w + 96 bytes (the line, the kernel's scratch). */
__attribute__((target("avx2"))) static void deblock_row_lines(uint8_t *row, int step,
                                                               Py_ssize_t w,
                                                               const EdgeFilter *f,
                                                               Py_ssize_t k, uint8_t *line)
{
    for (Py_ssize_t i = 0; i < k; i++) {
        uint8_t *s = row + f[i].c;
        if (f[i].period < 4) {  /* deblock_ycc's kernel takes periods >= 4 */
            deblock_row(s, step, w, f[i].period, f[i].alpha, f[i].beta, f[i].tc);
            continue;
        }
        channel_line_get(s, step, w, line);
        edges_along_avx2(line, w, f[i].period, f[i].alpha, f[i].beta, f[i].tc, line + w);
        channel_line_put(s, step, w, line);
    }
}

/* restore_pad with src a channel of RGB or RGBX rows (step 3 or 4), each row by
   channel_line_get. */
__attribute__((target("avx2"))) static void restore_pad_avx2(
    uint8_t *pad, const uint8_t *src, Py_ssize_t src_row, int step, Py_ssize_t w, Py_ssize_t y0,
    Py_ssize_t n, Py_ssize_t top, Py_ssize_t height)
{
    Py_ssize_t pw = w + 2 * RESTORE_REACH;
    for (Py_ssize_t i = 0; i < n + 2 * RESTORE_REACH; i++) {
        Py_ssize_t y = y0 - RESTORE_REACH + i;
        y = y < 0 ? 0 : y >= height ? height - 1 : y;
        uint8_t *d = pad + i * pw + RESTORE_REACH;
        channel_line_get(src + (y - top) * src_row, step, w, d);
        for (int k = 1; k <= RESTORE_REACH; k++) {
            d[-k] = d[0];
            d[w - 1 + k] = d[w - 1];
        }
    }
}

/* Two terms of 16 samples' sums (lo_sum: samples 0-3 and 8-11, hi_sum: 4-7 and 12-15, as
   _mm256_unpacklo/hi_epi16 pair them): first * c + second * c' with (c, c') the pair's
   coefficients, of each sample's class (select: lo_class / hi_class, 32-bit) or tab's. */
static inline __attribute__((target("avx2"), always_inline)) void restore_term(
    __m256i *lo_sum, __m256i *hi_sum, __m256i first, __m256i second, __m256i tab, int select,
    __m256i lo_class, __m256i hi_class)
{
    __m256i lo_c = select ? _mm256_permutevar8x32_epi32(tab, lo_class) : tab;
    __m256i hi_c = select ? _mm256_permutevar8x32_epi32(tab, hi_class) : tab;
    *lo_sum = _mm256_add_epi32(*lo_sum, _mm256_madd_epi16(_mm256_unpacklo_epi16(first, second),
                                                          lo_c));
    *hi_sum = _mm256_add_epi32(*hi_sum, _mm256_madd_epi16(_mm256_unpackhi_epi16(first, second),
                                                          hi_c));
}

/* The 7 pad rows around an output row as 16-bit samples (row[3] its own, each at column 0)
   and its 3 rows of activity sums across, held in locals by restore_row_avx2: a store
   through uint8_t * may alias any object, so pointers read through an array would be read
   again after every store. */
typedef struct {
    const int16_t *row[7];
    const int16_t *sums[3];
} RestoreRows;

/* n >= 16 bytes of a pad row as 16-bit samples into wide (restore_row_avx2's rows: each
   sample is read 25 times, by the diamonds of the samples around it, so it is widened once
   and a pair sum is a load and an add). */
__attribute__((target("avx2"))) static void restore_widen_row(const uint8_t *p, Py_ssize_t n,
                                                               int16_t *wide)
{
    Py_ssize_t j;
    for (j = 0; j + 16 <= n; j += 16)
        _mm256_storeu_si256((__m256i *)(wide + j), restore_widen(p + j));
    if (j < n)  /* the last 16, overlapping */
        _mm256_storeu_si256((__m256i *)(wide + n - 16), restore_widen(p + n - 16));
}

/* 16 restored samples from column x on (rows, sums, tab, bm: restore_row_avx2's). */
static inline __attribute__((target("avx2"), always_inline)) __m128i restore_block16(
    const RestoreRows *rr, Py_ssize_t x, int select, const __m256i *tab, const __m256i *bm)
{
    __m256i lo_class = _mm256_setzero_si256(), hi_class = lo_class;
    if (select) {
        __m256i a = _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(rr->sums[0] + x)),
                                     _mm256_loadu_si256((const __m256i *)(rr->sums[1] + x)));
        a = _mm256_add_epi16(a, _mm256_loadu_si256((const __m256i *)(rr->sums[2] + x)));
        /* minus the class (-1 for each bound <= a, a > bound - 1) as 32-bit lanes in the
           order of the unpacked pairs below: 0, 0xffff, 0xfffe, 0xfffd, whose low 3 bits
           pick lanes 0, 7, 6, 5 of tab (restore_tables puts classes 0..3 there) */
        __m256i k = _mm256_add_epi16(_mm256_add_epi16(_mm256_cmpgt_epi16(a, bm[0]),
                                                      _mm256_cmpgt_epi16(a, bm[1])),
                                     _mm256_cmpgt_epi16(a, bm[2]));
        lo_class = _mm256_unpacklo_epi16(k, _mm256_setzero_si256());
        hi_class = _mm256_unpackhi_epi16(k, _mm256_setzero_si256());
    }
    const int16_t *const *r = rr->row;
    __m256i lo_sum = _mm256_setzero_si256(), hi_sum = lo_sum;
    /* the tap pairs (0, 1) .. (10, 11) of the offsets (dy, dx) in the spec's order
       (RESTORE_SUM), then (centre, 1), written out: each pair's sums used as soon as they
       are loaded */
#define RESTORE_PAIR(dy, dx)                                                                   \
    _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(r[3 + (dy)] + x + (dx))),            \
                     _mm256_loadu_si256((const __m256i *)(r[3 - (dy)] + x - (dx))))
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(0, 1), RESTORE_PAIR(0, 2), tab[0], select,
                 lo_class, hi_class);
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(0, 3), RESTORE_PAIR(1, -2), tab[1], select,
                 lo_class, hi_class);
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(1, -1), RESTORE_PAIR(1, 0), tab[2], select,
                 lo_class, hi_class);
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(1, 1), RESTORE_PAIR(1, 2), tab[3], select,
                 lo_class, hi_class);
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(2, -1), RESTORE_PAIR(2, 0), tab[4], select,
                 lo_class, hi_class);
    restore_term(&lo_sum, &hi_sum, RESTORE_PAIR(2, 1), RESTORE_PAIR(3, 0), tab[5], select,
                 lo_class, hi_class);
#undef RESTORE_PAIR
    __m256i centre = _mm256_loadu_si256((const __m256i *)(r[3] + x));
    restore_term(&lo_sum, &hi_sum, centre, _mm256_set1_epi16(1), tab[6], select, lo_class,
                 hi_class);
    __m256i v = _mm256_packs_epi32(_mm256_srai_epi32(lo_sum, 7), _mm256_srai_epi32(hi_sum, 7));
    v = _mm256_add_epi16(v, centre);
    return _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

/* One output row of w >= 16 samples into o (every step-th byte) from its 7 pad rows r as
   16-bit samples (restore_widen_row; r[3] its own, each at column 0), h3 the 3 rows of
   activity sums across (NULL with one class), tab the 7 coefficient-pair tables, bm the
   bounds - 1 (16-bit). */
static inline __attribute__((target("avx2"), always_inline)) void restore_row_avx2(
    uint8_t *o, int step, const RestoreScatter *sc, const int16_t *const *r, Py_ssize_t w,
    const int16_t *const *h3, const __m256i *tab, const __m256i *bm)
{
    const int select = h3 != NULL;
    RestoreRows rr;
    for (int k = 0; k < 7; k++)
        rr.row[k] = r[k];
    for (int k = 0; k < 3; k++)
        rr.sums[k] = select ? h3[k] : NULL;
    Py_ssize_t x = 0;
    for (; x + 16 < w; x += 16)  /* each span followed by a sample of the row */
        restore_store16(o + x * step, restore_block16(&rr, x, select, tab, bm), step, 1, sc);
    /* the last 16, overlapping: read from the pad rows, not from o */
    x = w - 16;
    restore_store16(o + x * step, restore_block16(&rr, x, select, tab, bm), step, 0, sc);
}

/* restore_row_avx2's coefficient-pair tables (tab, 7) and bounds - 1 (bm, 3) of a channel's
   filter (coef, bounds: as restore_band_rows takes them). */
__attribute__((target("avx2"))) static void restore_tables(const int32_t *coef,
                                                            Py_ssize_t classes,
                                                            const int32_t *bounds, __m256i *tab,
                                                            __m256i *bm)
{
    /* the class whose pairs lane k holds: lanes 0, 7, 6, 5 are picked by minus classes 0..3
       (restore_block16); the others are never picked */
    static const int lane_class[8] = {0, 0, 0, 0, 0, 3, 2, 1};
    for (int t = 0; t < 7; t++) {
        int32_t lanes[8];
        for (int k = 0; k < 8; k++) {
            /* lane k lane_class[k]'s pair, permuted per sample; with one class, every lane
               class 0's, taken as it is */
            const int32_t *c = coef + 16 * (classes == 1 ? 0 : lane_class[k]);
            int32_t first = t < 6 ? c[2 * t] : -2 * c[RESTORE_TAPS];
            int32_t second = t < 6 ? c[2 * t + 1] : 64;
            lanes[k] = (int32_t)((uint32_t)(uint16_t)first | (uint32_t)(uint16_t)second << 16);
        }
        tab[t] = _mm256_loadu_si256((const __m256i *)lanes);
    }
    for (int i = 0; i < 3; i++)  /* every activity <= 9180: a bound above 32767 is never met */
        bm[i] = _mm256_set1_epi16((int16_t)((bounds[i] > 32767 ? 32767 : bounds[i]) - 1));
}

/* restore_band_rows for w >= 16 (arguments as there; act: (n + 2) x w + (w + 2) int16;
   wide: the pad's (n + 6) x (w + 6) samples as int16). */
__attribute__((target("avx2"))) static void restore_band_rows_avx2(
    const uint8_t *pad, Py_ssize_t w, Py_ssize_t n, uint8_t *out, Py_ssize_t out_row,
    Py_ssize_t out_step, const int32_t *bounds, Py_ssize_t classes, const int32_t *coef,
    int16_t *act, uint8_t *row, int16_t *wide)
{
    Py_ssize_t pw = w + 2 * RESTORE_REACH;
    __m256i tab[7], bm[3];
    restore_tables(coef, classes, bounds, tab, bm);
    restore_widen_row(pad, pw * (n + 2 * RESTORE_REACH), wide);
    int16_t *lap = act + (size_t)(n + 2) * (size_t)w;
    if (classes > 1)
        for (Py_ssize_t i = 0; i < n + 2; i++)  /* rows -1 .. n */
        {
            const uint8_t *p = pad + (i + RESTORE_REACH - 1) * pw + RESTORE_REACH - 1;
            restore_activity_lines_avx2(p - pw, p, p + pw, w, lap, act + i * w);
        }
    RestoreScatter sc = restore_scatter(out_step == 3 ? 3 : 4);
    for (Py_ssize_t i = 0; i < n; i++) {
        const int16_t *r[7];
        for (int k = 0; k < 7; k++)
            r[k] = wide + (i + k) * pw + RESTORE_REACH;
        const int16_t *h3[3] = {act + i * w, act + (i + 1) * w, act + (i + 2) * w};
        uint8_t *o = out + i * out_row;
        /* a copy of the row's loop for each step (a channel of RGB or RGBX rows; any other
           through `row`) and for one class (no activity, no selection) */
#define RESTORE_ROW(o, step)                                                                   \
    (classes > 1 ? restore_row_avx2((o), (step), &sc, r, w, h3, tab, bm)                       \
                 : restore_row_avx2((o), (step), &sc, r, w, NULL, tab, bm))
        if (out_step == 1)
            RESTORE_ROW(o, 1);
        else if (out_step == 3)
            RESTORE_ROW(o, 3);
        else if (out_step == 4)
            RESTORE_ROW(o, 4);
        else
            RESTORE_ROW(row, 1);
#undef RESTORE_ROW
        if (out_step != 1 && out_step != 3 && out_step != 4)
            for (Py_ssize_t j = 0; j < w; j++)
                o[j * out_step] = row[j];
    }
}
#endif

/* One channel's restoration filter as the kernels take it: per class its 12 coefficients and
   their sum, 16 apart; the missing bounds above every activity (at most 9 x 2 x 1020), so
   that a class is the count of bounds <= it. c: its channel (restore_ycc). */
typedef struct {
    Py_ssize_t c, classes;
    int32_t coef[RESTORE_CLASSES * 16];
    int32_t bounds[RESTORE_CLASSES - 1];
} RestoreFilter;

/* rf from bounds (int64 (classes - 1,), C-contiguous) and coefficients (int64 (classes, 12),
   C-contiguous): -1 with ValueError unless 1 <= classes <= 4, every coefficient is in
   -64..63 and the bounds are >= 0 and do not decrease. */
static int restore_filter(const Arr *ba, const Arr *ca, RestoreFilter *rf, const char *who)
{
    Py_ssize_t classes = ca->shape[0];
    if (classes < 1 || classes > RESTORE_CLASSES || ca->shape[1] != RESTORE_TAPS
        || ba->shape[0] != classes - 1) {
        PyErr_Format(PyExc_ValueError, "%s: needs 1..4 classes of 12 coefficients and "
                     "classes - 1 bounds", who);
        return -1;
    }
    memset(rf, 0, sizeof(*rf));
    rf->classes = classes;
    for (int i = 0; i < RESTORE_CLASSES - 1; i++)
        rf->bounds[i] = INT32_MAX;
    const int64_t *cv = (const int64_t *)ca->data, *bv = (const int64_t *)ba->data;
    for (Py_ssize_t k = 0; k < classes; k++) {
        for (Py_ssize_t t = 0; t < RESTORE_TAPS; t++) {
            int64_t v = cv[k * RESTORE_TAPS + t];
            if (v < -64 || v > 63) {
                PyErr_Format(PyExc_ValueError, "%s: coefficients must be in -64..63", who);
                return -1;
            }
            rf->coef[16 * k + t] = (int32_t)v;
            rf->coef[16 * k + RESTORE_TAPS] += (int32_t)v;
        }
    }
    for (Py_ssize_t i = 0; i < classes - 1; i++) {
        if ((i && bv[i] < bv[i - 1]) || bv[i] < 0) {
            PyErr_Format(PyExc_ValueError, "%s: bounds must not decrease, nor be negative",
                         who);
            return -1;
        }
        rf->bounds[i] = bv[i] > INT32_MAX ? INT32_MAX : (int32_t)bv[i];
    }
    return 0;
}

PyDoc_STRVAR(restore_doc,
"restore(src, out, y0, y1, top, height, bounds, coefficients) -> None\n\n"
"codec.restoration.restore_rows into out ((y1 - y0, w) uint8, any strides): rows [y0, y1)\n"
"of the restored channel of `height` rows, from src ((rows, w) uint8, any strides: the\n"
"channel's rows from row `top` on, holding rows max(y0 - 3, 0) .. min(y1 + 3, height) - 1;\n"
"every row of it read before out is written, so out may be rows of src); bounds int64\n"
"(classes - 1) non-decreasing, coefficients int64 (classes, 12) in -64..63, 1 <= classes\n"
"<= 4. From colour_rows level 1 the AVX2 rows (rows of 16 samples and more), else the plain\n"
"loops: the same bits. Where out is a channel of RGB or RGBX rows, the bytes between its\n"
"samples are written back as they were: no other thread may write them meanwhile.");

static PyObject *restore(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"src", "out", "y0", "y1", "top", "height", "bounds",
                            "coefficients", NULL};
    PyObject *o_src, *o_out, *o_bounds, *o_coef, *result = NULL;
    Py_ssize_t y0, y1, top, height;
    Arr src = {0}, out = {0}, ba = {0}, ca = {0};
    uint8_t *pad = NULL;
    int32_t *lap = NULL;
    int16_t *wide = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnnnnOO:restore", names, &o_src, &o_out,
                                     &y0, &y1, &top, &height, &o_bounds, &o_coef))
        return NULL;
    if (get_array(o_src, &src, "src", 2, T_U8, 0) < 0
        || get_array(o_out, &out, "out", 2, T_U8, A_WRITABLE) < 0
        || get_array(o_bounds, &ba, "bounds", 1, T_I64, A_CONTIGUOUS) < 0
        || get_array(o_coef, &ca, "coefficients", 2, T_I64, A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t w = src.shape[1], n = y1 - y0;
    Py_ssize_t need_lo = y0 - RESTORE_REACH < 0 ? 0 : y0 - RESTORE_REACH;
    Py_ssize_t need_hi = y1 + RESTORE_REACH > height ? height : y1 + RESTORE_REACH;
    if (height < 1 || w < 1 || y0 < 0 || y1 <= y0 || y1 > height || top < 0
        || need_lo < top || need_hi - top > src.shape[0] || out.shape[0] != n
        || out.shape[1] != w || w > (PY_SSIZE_T_MAX >> 4) / (n + 2 * RESTORE_REACH)) {
        value_error("restore: needs 0 <= y0 < y1 <= height, src holding rows y0 - 3 .. "
                    "y1 + 2 (clamped) from row top, out (y1 - y0, w), 1..4 classes of 12 "
                    "coefficients and classes - 1 bounds");
        goto done;
    }
    RestoreFilter rf;
    if (restore_filter(&ba, &ca, &rf, "restore") < 0)
        goto done;
    const int32_t *coef = rf.coef, *bounds = rf.bounds;
    Py_ssize_t classes = rf.classes;
    size_t pw = (size_t)(w + 2 * RESTORE_REACH), lw = (size_t)(w + 2);
#if FUSED_PRODUCT
    int simd = simd_colour && w >= 16;
#else
    int simd = 0;
#endif
    pad = malloc(pw * (size_t)(n + 2 * RESTORE_REACH));
    /* the plain loops: Laplacians, column sums (int32), classes, a row; AVX2: the activity
       sums across (int16, rows -1 .. n), a row of Laplacians, a row, and the pad as int16 */
    lap = malloc(simd ? sizeof(int16_t) * ((size_t)w * (size_t)(n + 2) + lw) + (size_t)w
                      : sizeof(int32_t) * (lw * (size_t)(n + 2) + lw) + 2 * (size_t)w);
    if (simd)
        wide = malloc(sizeof(int16_t) * pw * (size_t)(n + 2 * RESTORE_REACH));
    if (pad == NULL || lap == NULL || (simd && wide == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
#if FUSED_PRODUCT
    if (simd && (src.strides[1] == 3 || src.strides[1] == 4))
        restore_pad_avx2(pad, (const uint8_t *)src.data, src.strides[0], (int)src.strides[1],
                         w, y0, n, top, height);
    else
#endif
        restore_pad(pad, (const uint8_t *)src.data, src.strides[0], src.strides[1], w, y0, n,
                    top, height);
#if FUSED_PRODUCT
    if (simd)
        restore_band_rows_avx2(pad, w, n, (uint8_t *)out.data, out.strides[0], out.strides[1],
                               bounds, classes, coef, (int16_t *)lap,
                               (uint8_t *)((int16_t *)lap + (size_t)w * (size_t)(n + 2) + lw),
                               wide);
    else
#endif
        restore_band_rows(pad, w, n, (uint8_t *)out.data, out.strides[0], out.strides[1],
                          bounds, classes, coef, lap, lap + lw * (size_t)(n + 2),
                          (uint8_t *)(lap + lw * (size_t)(n + 2) + lw),
                          (uint8_t *)(lap + lw * (size_t)(n + 2) + lw) + w);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(pad);
    free(lap);
    free(wide);
    release(&src);
    release(&out);
    release(&ba);
    release(&ca);
    return result;
}

/* ------------------------------------------------ decoding: deblocking, restoration, colour
   restore_ycc: deblock_ycc's pass with the restoration filter between the deblocking filter
   and the conversion, on a ring of rows of each of Y', Cb and Cr (as bytes, each with 3
   replicated samples either side, as restore_pad pads them). A row is deblocked as it comes
   in (vertical edges, then the horizontal edge whose fourth row it is); once no edge writes
   it any more it is final, and once the rows 3 below a row are final the row is restored and
   converted. */

/* Rows of each channel's ring: rows z - 3 .. z + 5 are held when row z is restored (row
   z + 5 in, z + 3 final); a power of two. */
#define RESTORE_RING 16
/* Rows after which a row is final: horizontal edge e is filtered once row e + 1 is in and
   writes rows e - 1 and e, so row y - 2 is final once row y's edges are done. */
#define RESTORE_LAG 2

/* The plain loops of restore_activity_lines_avx2 (the same integers). */
static void restore_activity_lines(const uint8_t *up, const uint8_t *p, const uint8_t *down,
                                   Py_ssize_t w, int16_t *lap, int16_t *h3)
{
    for (Py_ssize_t j = 0; j < w + 2; j++) {
        int32_t c2 = 2 * (int32_t)p[j];
        int32_t hz = c2 - p[j - 1] - p[j + 1], vt = c2 - up[j] - down[j];
        lap[j] = (int16_t)((hz < 0 ? -hz : hz) + (vt < 0 ? -vt : vt));
    }
    for (Py_ssize_t j = 0; j < w; j++)
        h3[j] = (int16_t)(lap[j] + lap[j + 1] + lap[j + 2]);
}

/* One restored line of w samples into o from the 7 padded lines r around it (r[3] its own,
   each at column 0) and h3 the 3 rows of activity sums across (NULL with one class): the
   plain loops of restore_band_rows, one sample at a time. */
static void restore_line(uint8_t *o, const uint8_t *const *r, Py_ssize_t w,
                         const int16_t *const *h3, const RestoreFilter *rf)
{
    for (Py_ssize_t j = 0; j < w; j++) {
        int32_t k = 0;
        if (h3 != NULL) {
            int32_t a = (int32_t)h3[0][j] + h3[1][j] + h3[2][j];
            k = (a >= rf->bounds[0]) + (a >= rf->bounds[1]) + (a >= rf->bounds[2]);
        }
        const int32_t *c = rf->coef + 16 * k;
        o[j] = restore_clamp(r[3][j], RESTORE_SUM(r, j, c));
    }
}

#if FUSED_PRODUCT
/* restore_line on CPUs with AVX2 (w >= 16), by restore_row_avx2 (r: the lines as 16-bit
   samples; tab, bm: restore_tables). */
__attribute__((target("avx2"))) static void restore_line_avx2(uint8_t *o,
                                                               const int16_t *const *r,
                                                               Py_ssize_t w,
                                                               const int16_t *const *h3,
                                                               const __m256i *tab,
                                                               const __m256i *bm)
{
    if (h3 != NULL)
        restore_row_avx2(o, 1, &channel_scatters[0], r, w, h3, tab, bm);
    else
        restore_row_avx2(o, 1, &channel_scatters[0], r, w, NULL, tab, bm);
}
#endif

/* Channel ch of a row of w pixels of c channels into a line (simd: c is 3 or 4). */
static void ring_get(int simd, const uint8_t *row, Py_ssize_t c, Py_ssize_t ch, Py_ssize_t w,
                     uint8_t *line)
{
#if FUSED_PRODUCT
    if (simd) {
        channel_line_get(row + ch, (int)c, w, line);
        return;
    }
#endif
    channel_line(row, c, ch, w, line);
}

/* A line into channel ch of a row of w pixels of c channels, the other bytes kept. */
static void ring_put(int simd, uint8_t *row, Py_ssize_t c, Py_ssize_t ch, Py_ssize_t w,
                     const uint8_t *line)
{
#if FUSED_PRODUCT
    if (simd) {
        channel_line_put(row + ch, (int)c, w, line);
        return;
    }
#endif
    for (Py_ssize_t x = 0; x < w; x++)
        row[c * x + ch] = line[x];
}

/* Rows held as deblocked Y'CbCr bytes (restore_ycc's above and below): image rows
   [first, first + rows) into `data`, row_bytes apart. */
typedef struct {
    uint8_t *data;
    Py_ssize_t first, rows, row_bytes;
} HeldRows;

/* held from an (n, w, c) uint8 C-contiguous array (None: no rows) holding image rows from
   `first` on, all inside [y0, y1). */
static int held_rows(PyObject *obj, Arr *a, HeldRows *held, Py_ssize_t first, int below,
                     Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t w, Py_ssize_t c)
{
    held->data = NULL;
    held->rows = 0;
    if (obj == Py_None)
        return 0;
    if (get_array(obj, a, below ? "below" : "above", 3, T_U8, A_WRITABLE | A_CONTIGUOUS) < 0)
        return -1;
    Py_ssize_t n = a->shape[0];
    if (below)
        first = y1 - n;
    if (a->shape[1] != w || a->shape[2] != c || n > y1 - y0 || first < y0 || first + n > y1)
        return value_error("restore_ycc: above and below must be (n, w, c) rows inside y0..y1");
    held->data = (uint8_t *)a->data;
    held->first = first;
    held->rows = n;
    held->row_bytes = a->strides[0];
    return 0;
}

PyDoc_STRVAR(restore_ycc_doc,
"restore_ycc(out, y0, y1, r0, r1, filters, restorations, k, cb=None, cr=None, top=0,\n"
"            first=0, height=-1, above=None, below=None, pad=-1, matrix=None, patch=0,\n"
"            per_row=0) -> None\n\n"
"Rows [y0, y1) of out ((rows, w, c) uint8 C-contiguous, c = 3 or 4, Y'CbCr bytes in\n"
"channels 0..2; out's row 0 is the image's row `top`, the image has `height` rows, -1: out's)\n"
"deblocked (spec section 5.4: every vertical edge, and the horizontal edges whose four rows\n"
"are all in [y0, y1); filters as `deblock` takes them, channels 0..2, every period >= 4),\n"
"then rows [r0, r1) restored (spec section 5.6; restorations: (channel 0..2, bounds,\n"
"coefficients) as `restore` takes them, each channel once) and converted to RGB in place\n"
"(k as convert_ycc; pad as deblock_ycc's), in one pass over a ring of rows: the bits of\n"
"`deblock`, `restore` and `convert_ycc` one after the other. The restoration reads rows\n"
"r0 - 3 .. r1 + 2 (clamped to the image), which must lie in [y0, y1). With cb and cr (as\n"
"deblock_ycc takes them), Cb and Cr are doubled from them instead of read from out. above\n"
"and below ((n, w, c) uint8 arrays): rows y0 .. y0 + n - 1 and y1 - n .. y1 - 1, deblocked\n"
"but neither restored nor converted, written into their channels 0..2 (a band's rows at its\n"
"boundaries, which the rows of the next band filter and restore further). With matrix (as\n"
"deblock_ycc takes it), Y' comes from it instead of from out.");

static PyObject *restore_ycc(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"out", "y0", "y1", "r0", "r1", "filters", "restorations", "k", "cb",
                            "cr", "top", "first", "height", "above", "below", "pad", "matrix",
                            "patch", "per_row", NULL};
    YccBand b = {.o_cb = Py_None, .o_cr = Py_None, .o_matrix = Py_None, .height = -1,
                 .pad = -1, .o_cb2 = Py_None, .o_cr2 = Py_None};
    PyObject *o_rest, *o_above = Py_None, *o_below = Py_None, *rest = NULL, *result = NULL;
    Py_ssize_t r0, r1, nr = 0;
    Arr held_arrays[2], rest_arrays[2 * 3];
    HeldRows held[2];
    RestoreFilter rf[3];
    uint8_t *ring = NULL;
    int16_t *act = NULL, *wide = NULL;
    memset(held_arrays, 0, sizeof(held_arrays));
    memset(rest_arrays, 0, sizeof(rest_arrays));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnnnOOO|OOnnnOOnOnn:restore_ycc", names,
                                     &b.o_out, &b.y0, &b.y1, &r0, &r1, &b.o_filters, &o_rest,
                                     &b.o_k, &b.o_cb, &b.o_cr, &b.top, &b.first, &b.height,
                                     &o_above, &o_below, &b.pad, &b.o_matrix, &b.patch,
                                     &b.per_row))
        return NULL;
    /* the deblocking filters of Y', Cb and Cr only (the ring holds those channels) */
    if (ycc_band_open(&b, "restore_ycc", 3) < 0)
        goto done;
    /* the loop's values as locals (b's address escaped: a call could change its fields) */
    Py_ssize_t y0 = b.y0, y1 = b.y1, top = b.top, h = b.h, w = b.w, c = b.c, nf = b.nf,
               patch = b.patch, per_row = b.per_row, pad = b.pad;
    int chroma = b.chroma;
    const EdgeFilter *f = b.f;
    const float *k = b.k;
    float *mline = b.mline;
    Py_ssize_t need_lo = r0 - RESTORE_REACH < 0 ? 0 : r0 - RESTORE_REACH;
    Py_ssize_t need_hi = r1 + RESTORE_REACH > h ? h : r1 + RESTORE_REACH;
    if (nf > 3 || c > 4 || w < 1 || y0 >= y1 || r0 < y0 || r1 > y1
        || (r0 < r1 && (need_lo < y0 || need_hi > y1))) {
        value_error("restore_ycc: needs filters (k <= 3, 5), out of 3 or 4 channels, "
                    "y0 < y1 <= height, and rows r0 - 3 .. r1 + 2 (clamped) inside [y0, y1)");
        goto done;
    }
    if ((rest = PySequence_Fast(o_rest, "restore_ycc: restorations must be a sequence"))
        == NULL)
        goto done;
    nr = PySequence_Fast_GET_SIZE(rest);
    if (nr > 3) {
        value_error("restore_ycc: at most 3 restorations");
        goto done;
    }
    for (Py_ssize_t j = 0; j < nr; j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(rest, j), *o_ch, *o_b, *o_c;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OOO", &o_ch, &o_b, &o_c)) {
            PyErr_Clear();
            value_error("restore_ycc: each restoration must be (channel, bounds, coefficients)");
            goto done;
        }
        Py_ssize_t ch = PyNumber_AsSsize_t(o_ch, PyExc_OverflowError);
        if (ch == -1 && PyErr_Occurred())
            goto done;
        if (get_array(o_b, &rest_arrays[2 * j], "bounds", 1, T_I64, A_CONTIGUOUS) < 0
            || get_array(o_c, &rest_arrays[2 * j + 1], "coefficients", 2, T_I64,
                         A_CONTIGUOUS) < 0
            || restore_filter(&rest_arrays[2 * j], &rest_arrays[2 * j + 1], &rf[j],
                              "restore_ycc") < 0)
            goto done;
        int repeated = 0;
        for (Py_ssize_t i = 0; i < j; i++)
            repeated |= rf[i].c == ch;
        if (ch < 0 || ch > 2 || repeated) {
            value_error("restore_ycc: each restoration's channel must be 0..2, and once");
            goto done;
        }
        rf[j].c = ch;
    }
    if (held_rows(o_above, &held_arrays[0], &held[0], y0, 0, y0, y1, w, c) < 0
        || held_rows(o_below, &held_arrays[1], &held[1], y0, 1, y0, y1, w, c) < 0)
        goto done;
    if (w > PY_SSIZE_T_MAX / (4 * 3 * RESTORE_RING) - 64 || line_buffers(&b.wc, w) == NULL)
        goto done;
    float *blue = b.wc.wide + 4 * w, *red = blue + w, *luma = red + 2 * w;
    uint8_t *planar = (uint8_t *)(red + w);
    /* the rings (3 channels of RESTORE_RING padded rows), a restored line per channel (w + 16
       bytes), the vertical edges' scratch (w + 16); per restored channel of more than one
       class its 4 rows of activity sums (by row + 1 mod 4), then a row of Laplacians */
    Py_ssize_t pw = w + 2 * RESTORE_REACH;
    size_t ring_bytes = (size_t)(3 * RESTORE_RING) * (size_t)pw;
    ring = malloc(ring_bytes + 4 * ((size_t)w + 16));
    act = malloc(sizeof(int16_t) * ((size_t)(4 * nr) * (size_t)w + (size_t)w + 2 + 16));
    if (ring == NULL || act == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t *restored = ring + ring_bytes, *scratch = restored + 3 * ((size_t)w + 16);
    int16_t *lap = act + (size_t)(4 * nr) * (size_t)w;
#define LINE(ch, y) (ring + ((ch) * RESTORE_RING + ((y) & (RESTORE_RING - 1))) * pw + RESTORE_REACH)
#define CLAMPED(ch, y) LINE(ch, (y) < 0 ? 0 : (y) >= h ? h - 1 : (y))
#define SUMS(j, q) (act + ((j) * 4 + (((q) + 1) & 3)) * w)
    int simd = simd_level(c), error = 0;
#if FUSED_PRODUCT
    int rsimd = simd && w >= 16;
    __m256i tab[3][7], bm[3][3];
    for (Py_ssize_t j = 0; rsimd && j < nr; j++)
        restore_tables(rf[j].coef, rf[j].classes, rf[j].bounds, tab[j], bm[j]);
    /* the restored channels' rings as 16-bit samples too (restore_row_avx2's rows) */
    if (rsimd && nr > 0 && (wide = malloc(sizeof(int16_t) * ring_bytes)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
#define WIDE(ch, y) (wide + ((ch) * RESTORE_RING + ((y) & (RESTORE_RING - 1))) * pw + RESTORE_REACH)
#define WIDE_CLAMPED(ch, y) WIDE(ch, (y) < 0 ? 0 : (y) >= h ? h - 1 : (y))
#endif
    Py_ssize_t row = b.out.strides[0], next = r0, summed[3] = {r0 - 1, r0 - 1, r0 - 1};
    uint8_t *base = (uint8_t *)b.out.data;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = y0; y < y1 + RESTORE_LAG && !error; y++) {
        if (y < y1) {
            const uint8_t *line = base + (y - top) * row;
            if (mline != NULL) {
                Py_ssize_t gy = (y - top) / patch, py = (y - top) % patch;
                ring_luma(simd, LINE(0, y), w, b.matrix.data, gy * per_row * patch * patch
                          + py * patch, patch, per_row, mline);
            } else {
                ring_get(simd, line, c, 0, w, LINE(0, y));
            }
            if (chroma) {
                error = ring_chroma(simd, &b.wc, y, LINE(1, y), LINE(2, y), w, blue, red);
                if (error)
                    break;
            } else {
                ring_get(simd, line, c, 1, w, LINE(1, y));
                ring_get(simd, line, c, 2, w, LINE(2, y));
            }
            for (Py_ssize_t i = 0; i < nf; i++)
                ring_vertical(simd, LINE(f[i].c, y), w, &f[i], scratch);
            /* edge e = y - 1, its rows e - 2 .. e + 1 all in [y0, y1) */
            for (Py_ssize_t i = 0; i < nf; i++) {
                Py_ssize_t e = y - 1, ch = f[i].c;
                if (e - 2 >= y0 && e % f[i].period == 0)
                    ring_horizontal(simd, LINE(ch, y - 3), LINE(ch, y - 2), LINE(ch, y - 1),
                                    LINE(ch, y), w, &f[i]);
            }
        }
        Py_ssize_t q = y - RESTORE_LAG;  /* final now */
        if (q < y0)
            continue;
        for (Py_ssize_t ch = 0; ch < 3; ch++) {  /* its edges replicated, as restore_pad's */
            uint8_t *d = LINE(ch, q);
            for (int i = 1; i <= RESTORE_REACH; i++) {
                d[-i] = d[0];
                d[w - 1 + i] = d[w - 1];
            }
        }
#if FUSED_PRODUCT
        for (Py_ssize_t j = 0; wide != NULL && j < nr; j++)
            restore_widen_row(LINE(rf[j].c, q) - RESTORE_REACH, pw,
                              WIDE(rf[j].c, q) - RESTORE_REACH);
#endif
        for (int b = 0; b < 2; b++)
            if (q >= held[b].first && q < held[b].first + held[b].rows)
                for (Py_ssize_t ch = 0; ch < 3; ch++)
                    ring_put(simd, held[b].data + (q - held[b].first) * held[b].row_bytes, c,
                             ch, w, LINE(ch, q));
        /* every row z whose rows z - 3 .. z + 3 (clamped) are final */
        for (; next < r1 && (next + RESTORE_REACH < h ? next + RESTORE_REACH : h - 1) <= q;
             next++) {
            Py_ssize_t z = next;
            const uint8_t *lines[3] = {LINE(0, z), LINE(1, z), LINE(2, z)};
            for (Py_ssize_t j = 0; j < nr; j++) {
                Py_ssize_t ch = rf[j].c;
                const uint8_t *r[7];
                for (int t = 0; t < 7; t++)
                    r[t] = CLAMPED(ch, z - RESTORE_REACH + t);
                const int16_t *h3[3] = {NULL, NULL, NULL};
                if (rf[j].classes > 1) {
                    /* the activity sums of rows z - 1 .. z + 1, each made once */
                    for (; summed[j] <= z + 1; summed[j]++) {
                        Py_ssize_t v = summed[j];
                        const uint8_t *up = CLAMPED(ch, v - 1) - 1, *mid = CLAMPED(ch, v) - 1,
                                      *down = CLAMPED(ch, v + 1) - 1;
#if FUSED_PRODUCT
                        if (rsimd)
                            restore_activity_lines_avx2(up, mid, down, w, lap, SUMS(j, v));
                        else
#endif
                            restore_activity_lines(up, mid, down, w, lap, SUMS(j, v));
                    }
                    h3[0] = SUMS(j, z - 1);
                    h3[1] = SUMS(j, z);
                    h3[2] = SUMS(j, z + 1);
                }
                uint8_t *o = restored + (size_t)ch * ((size_t)w + 16);
#if FUSED_PRODUCT
                if (rsimd) {
                    const int16_t *rw[7];
                    for (int t = 0; t < 7; t++)
                        rw[t] = WIDE_CLAMPED(ch, z - RESTORE_REACH + t);
                    restore_line_avx2(o, rw, w, rf[j].classes > 1 ? h3 : NULL, tab[j], bm[j]);
                } else
#endif
                    restore_line(o, r, w, rf[j].classes > 1 ? h3 : NULL, &rf[j]);
                lines[ch] = o;
            }
            ring_convert(simd, base + (z - top) * row, c, w, lines[0], lines[1], lines[2], k,
                         (int)pad, luma, blue, red, planar);
        }
    }
#undef LINE
#undef CLAMPED
#undef SUMS
#if FUSED_PRODUCT
#undef WIDE
#undef WIDE_CLAMPED
#endif
    Py_END_ALLOW_THREADS
    if (error)
        PyErr_SetString(PyExc_RuntimeError, "restore_ycc: chroma row out of range");
    else
        result = Py_NewRef(Py_None);
done:
    ycc_band_release(&b);
    free(ring);
    free(act);
    free(wide);
    Py_XDECREF(rest);
    for (int i = 0; i < 2; i++)
        release(&held_arrays[i]);
    for (int i = 0; i < 6; i++)
        release(&rest_arrays[i]);
    return result;
}

/* ------------------------------------------------------------ encoding: deblocking strengths */

/* The goal's bound in deblock_gains (|g| < 2^26): every term below then fits its int32 and
   int64 lanes. */
#define GAIN_GOAL_LIMIT (1 << 26)

/* Sum over a row of w samples of (n - o) (2^16 (n + o) - 2 g): 2^16 times the change of the
   squared error sum (v - g / 2^16)^2 when the samples o become n, in integers (|g| < 2^26:
   |2^16 (n + o) - 2 g| < 2^28, each term under 2^36). Branch-free, so that it vectorizes (32
   x 32 -> 64-bit products); unchanged samples add 0. */
HOT static int64_t error_change_row(const uint8_t *RESTRICT n, const uint8_t *RESTRICT o,
                                    const int32_t *RESTRICT g, Py_ssize_t w)
{
    int64_t sum = 0;
    for (Py_ssize_t x = 0; x < w; x++) {
        int32_t d = (int32_t)n[x] - (int32_t)o[x];
        int32_t s = (((int32_t)n[x] + (int32_t)o[x]) << 16) - 2 * g[x];
        sum += (int64_t)d * (int64_t)s;
    }
    return sum;
}

PyDoc_STRVAR(deblock_gains_doc,
"deblock_gains(samples, goal, counted, period, strengths, out) -> None\n\n"
"The encoder's trial of deblocking strengths on one channel (samples: (h, w) uint8,\n"
"C-contiguous; edge period 2 .. 2^20): for each filter i of strengths (int64 (k, 3): alpha,\n"
"beta, tc in 0..255), both passes of `deblock` on a copy of the samples, then out[i] (int64\n"
"(k,)) = the sum over the rows whose counted ((h,) uint8) is nonzero of (n - o)(2^16 (n + o)\n"
"- 2 g) over every sample o that the filter made n, g the goal ((h, w) int32, the target in\n"
"units of 2^-16, |g| < 2^26): 2^16 times the squared error the filter adds there. The sums\n"
"wrap modulo 2^64 (exact below 2^27 samples). encoder.deblock.EdgeSamples holds the numpy\n"
"path.");

static PyObject *deblock_gains(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"samples", "goal", "counted", "period", "strengths", "out", NULL};
    PyObject *o_samples, *o_goal, *o_counted, *o_strengths, *o_out, *result = NULL;
    Py_ssize_t period;
    Arr sa = {0}, ga = {0}, ca = {0}, fa = {0}, oa = {0};
    uint8_t *trial = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOnOO:deblock_gains", names, &o_samples,
                                     &o_goal, &o_counted, &period, &o_strengths, &o_out))
        return NULL;
    if (get_array(o_samples, &sa, "samples", 2, T_U8, A_CONTIGUOUS) < 0
        || get_array(o_goal, &ga, "goal", 2, T_I32, A_CONTIGUOUS) < 0
        || get_array(o_counted, &ca, "counted", 1, T_U8, A_CONTIGUOUS) < 0
        || get_array(o_strengths, &fa, "strengths", 2, T_I64, A_CONTIGUOUS) < 0
        || get_array(o_out, &oa, "out", 1, T_I64, A_CONTIGUOUS | A_WRITABLE) < 0)
        goto done;
    Py_ssize_t h = sa.shape[0], w = sa.shape[1], k = fa.shape[0];
    if (ga.shape[0] != h || ga.shape[1] != w || ca.shape[0] != h || fa.shape[1] != 3
        || oa.shape[0] != k || period < 2 || period > (1 << 20)) {
        value_error("deblock_gains: needs goal (h, w), counted (h,), strengths (k, 3), out (k,) "
                    "and period 2 .. 2^20");
        goto done;
    }
    const int64_t *sv = (const int64_t *)fa.data;
    for (Py_ssize_t i = 0; i < 3 * k; i++)
        if (sv[i] < 0 || sv[i] > 255) {
            value_error("deblock_gains: alpha, beta and tc must be in 0..255");
            goto done;
        }
    const int32_t *goal = (const int32_t *)ga.data;
    int bad = 0;
    for (Py_ssize_t i = 0; i < h * w; i++)
        bad |= goal[i] <= -GAIN_GOAL_LIMIT || goal[i] >= GAIN_GOAL_LIMIT;
    if (bad) {
        value_error("deblock_gains: every goal must be within +-2^26");
        goto done;
    }
    /* the trial channel, then a row of scratch: period 2's saved q0 row, or edges_along_avx2's
       64 bytes */
    trial = malloc((size_t)(h * w) + (size_t)w + 64);
    if (trial == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t *scratch = trial + h * w;
    const uint8_t *samples = (const uint8_t *)sa.data, *counted = (const uint8_t *)ca.data;
    int64_t *out = (int64_t *)oa.data;
    int simd = 0;
#if FUSED_PRODUCT
    simd = simd_colour != 0;
#endif
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < k; i++) {
        EdgeFilter f = {0, period, (int)sv[3 * i], (int)sv[3 * i + 1], (int)sv[3 * i + 2]};
        if (h * w > 0)
            memcpy(trial, samples, (size_t)(h * w));
        /* `deblock`'s two passes: the same bits (ring_vertical and ring_horizontal are
           deblock_ycc's, for periods of 4 and more; deblock_row and deblock_edge_row for 2) */
        for (Py_ssize_t y = 0; y < h; y++) {
            if (period >= 4)
                ring_vertical(simd, trial + y * w, w, &f, scratch);
            else
                deblock_row(trial + y * w, 1, w, period, f.alpha, f.beta, f.tc);
        }
        for (Py_ssize_t e = period; e + 1 < h; e += period) {
            if (period >= 4)
                ring_horizontal(simd, trial + (e - 2) * w, trial + (e - 1) * w, trial + e * w,
                                trial + (e + 1) * w, w, &f);
            else
                deblock_edge_row(trial, w, 1, e, 0, w, period, f.alpha, f.beta, f.tc, scratch);
        }
        uint64_t total = 0; /* wraps, as numpy's int64 sum */
        for (Py_ssize_t y = 0; y < h; y++) {
            if (!counted[y])
                continue;
            const uint8_t *n = trial + y * w, *o = samples + y * w;
            const int32_t *g = goal + y * w;
            Py_ssize_t r = y % period;
            if (period < 8 || r == 0 || r == period - 1) { /* a horizontal edge's p0 or q0 */
                total += (uint64_t)error_change_row(n, o, g, w);
                continue;
            }
            /* elsewhere only the vertical edges' p0 and q0 move (the same sum, fewer terms) */
            for (Py_ssize_t e = period; e + 1 < w; e += period)
                for (Py_ssize_t x = e - 1; x <= e; x++)
                    total += (uint64_t)((int64_t)((int32_t)n[x] - (int32_t)o[x])
                                        * (int64_t)((((int32_t)n[x] + (int32_t)o[x]) << 16)
                                                    - 2 * g[x]));
        }
        out[i] = (int64_t)total;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(trial);
    release(&sa);
    release(&ga);
    release(&ca);
    release(&fa);
    release(&oa);
    return result;
}

/* ------------------------------------------------------------------------ encoding */

/* One pixel row (w pixels of c channels, type T) as a plane row: the float32 sum of
   weights[k] * channel k (three channels) or weight * channel `first`, times unit, less
   offset (a second rounding, as a pass of its own would make it: the 8-bit Y'CbCr of an
   image off the decoder's grid less its mean bias; 0 for the others, where y - 0 is y for
   every product y: a product is never a signalling NaN). */
#define DEFINE_PLANE_LINE(NAME, LOAD)                                                         \
    ALWAYS_INLINE void NAME##_body(const char *row, Py_ssize_t w, Py_ssize_t c, int three,     \
                                   Py_ssize_t first, const float *wt, float unit,              \
                                   float offset, float *line)                                  \
    {                                                                                          \
        if (three) {                                                                           \
            for (Py_ssize_t x = 0; x < w; x++)                                                 \
                line[x] = (LOAD(row, c * x) * wt[0] + LOAD(row, c * x + 1) * wt[1]             \
                           + LOAD(row, c * x + 2) * wt[2]) * unit - offset;                    \
        } else {                                                                               \
            for (Py_ssize_t x = 0; x < w; x++)                                                 \
                line[x] = LOAD(row, c * x + first) * wt[0] * unit - offset;                    \
        }                                                                                      \
    }                                                                                          \
    HOT static void NAME(const char *row, Py_ssize_t w, Py_ssize_t c, int three,               \
                         Py_ssize_t first, const float *wt, float unit, float offset,           \
                         float *line)                                                          \
    {                                                                                          \
        if (three && c == 3) /* strides the compiler knows */                                  \
            NAME##_body(row, w, 3, 1, 0, wt, unit, offset, line);                              \
        else if (!three && c == 1)                                                             \
            NAME##_body(row, w, 1, 0, 0, wt, unit, offset, line);                              \
        else                                                                                   \
            NAME##_body(row, w, c, three, first, wt, unit, offset, line);                      \
    }

#define LOAD_U8(p, i) ((float)((const uint8_t *)(p))[i])
#define LOAD_U16(p, i) ((float)ld_u16((p) + 2 * (i)))
#define LOAD_F32(p, i) (ld_f32((p) + 4 * (i)))
DEFINE_PLANE_LINE(plane_line_u8, LOAD_U8)
DEFINE_PLANE_LINE(plane_line_u16, LOAD_U16)
DEFINE_PLANE_LINE(plane_line_f32, LOAD_F32)

#if FUSED_PRODUCT
/* The byte shuffle that widens channel k of the 8 pixels of `plane_line_c8_avx2`'s two
   16-byte loads to 32-bit integers: pixel i of a half at byte start + c i + k of its lane (start
   0, then `second_start`), zeros above (-1: bit 7 makes a zero byte). */
static __attribute__((target("avx2"))) __m256i channel_bytes(Py_ssize_t c, Py_ssize_t k,
                                                               Py_ssize_t second_start)
{
    uint8_t index[32];
    memset(index, 0x80, sizeof index);
    for (Py_ssize_t i = 0; i < 4; i++) {
        index[4 * i] = (uint8_t)(c * i + k);
        index[16 + 4 * i] = (uint8_t)(second_start + c * i + k);
    }
    return _mm256_loadu_si256((const __m256i *)(const void *)index);
}

/* `plane_line_u8_body` for rows of c == 3 or 4 interleaved channels (the three, or the one
   `first`), whole groups of 8 pixels by AVX2: lane by lane the same float32 operations in
   the same order, unfused (((r wt[0] + g wt[1]) + b wt[2]) or s wt[0], times unit, less
   offset), so the same bits. Pixels 0-3 of a group are read by a 16-byte load from its first
   byte, pixels 4-7 by one from byte 4 c - 4 (c == 3: the 16 bytes that end with the group,
   pixel 4 at their byte 4) or 4 c (c == 4), so no byte past the row's last is read; one byte
   shuffle per channel widens each half's 4 samples to 32-bit integers in their lane (not
   gathers as `unbiased_sums_avx2`: they cost more per pixel than the arithmetic on this kind
   of CPU). Returns the pixels done (the rest is the scalar loop's). */
static __attribute__((target("avx2"))) Py_ssize_t
plane_line_c8_avx2(const uint8_t *row, Py_ssize_t w, Py_ssize_t c, int three,
                   Py_ssize_t first, const float *wt, float unit, float offset,
                   float *RESTRICT line)
{
    const __m256 w0 = _mm256_set1_ps(wt[0]), w1 = _mm256_set1_ps(wt[1]),
                 w2 = _mm256_set1_ps(wt[2]), u = _mm256_set1_ps(unit),
                 off = _mm256_set1_ps(offset);
    Py_ssize_t second = c == 3 ? 8 : 16, second_start = c == 3 ? 4 : 0;
    const __m256i red = channel_bytes(c, three ? 0 : first, second_start),
                  green = channel_bytes(c, 1, second_start),
                  blue = channel_bytes(c, 2, second_start);
    Py_ssize_t x = 0;
    for (; x + 8 <= w; x += 8) {
        const uint8_t *p = row + c * x;
        __m256i both = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p)),
            _mm_loadu_si128((const __m128i *)(const void *)(p + second)), 1);
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(both, red)), w0);
        if (three) {
            __m256 g = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(both, green));
            __m256 b = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(both, blue));
            v = _mm256_add_ps(_mm256_add_ps(v, _mm256_mul_ps(g, w1)), _mm256_mul_ps(b, w2));
        }
        _mm256_storeu_ps(line + x, _mm256_sub_ps(_mm256_mul_ps(v, u), off));
    }
    return x;
}
#endif

/* `plane_line_u8`, whose rows of 3 or 4 channels take `plane_line_c8_avx2` where the colour
   switch is on (`colour_rows` >= 1; tests turn it off to compare), then the plain loop for the
   rest of the row. */
static void plane_line_u8_any(const char *row, Py_ssize_t w, Py_ssize_t c, int three,
                              Py_ssize_t first, const float *wt, float unit, float offset,
                              float *line)
{
    Py_ssize_t x = 0;
#if FUSED_PRODUCT
    if (simd_colour && (c == 3 || c == 4))
        x = plane_line_c8_avx2((const uint8_t *)row, w, c, three, first, wt, unit, offset,
                               line);
#endif
    if (x < w)
        plane_line_u8(row + c * x, w - x, c, three, first, wt, unit, offset, line + x);
}

/* The bias table's bilinear reads of `unbiased_line_body` from pixel x on: line[x] less
   table[k] w0, table[k + 1] w1, table[k + 256] w2 and table[k + 257] w3, k = cell[x] (at most
   254 * 256 + 254: every read is in the table's 65536), in that order, in float32. */
ALWAYS_INLINE void unbiased_table(const float *RESTRICT table, const int32_t *RESTRICT cell,
                                  const float *RESTRICT weight, float *RESTRICT line,
                                  Py_ssize_t w, Py_ssize_t x)
{
    for (; x < w; x++) {
        int32_t k = cell[x];
        float v = line[x];
        v -= table[k] * weight[x];
        v -= table[k + 1] * weight[w + x];
        v -= table[k + 256] * weight[2 * w + x];
        v -= table[k + 257] * weight[3 * w + x];
        line[x] = v;
    }
}

#if FUSED_PRODUCT
/* `unbiased_table` of whole groups of 8 pixels by AVX2 gathers (the compiler does not
   vectorize the table reads): in each lane the same multiplications and subtractions in the
   same order, unfused, so the same bits. Returns the pixels done (the rest is the scalar
   loop's). */
static __attribute__((target("avx2"))) Py_ssize_t
unbiased_table_avx2(const float *RESTRICT table, const int32_t *RESTRICT cell,
                    const float *RESTRICT weight, float *RESTRICT line, Py_ssize_t w)
{
    Py_ssize_t x = 0;
    for (; x + 8 <= w; x += 8) {
        __m256i k = _mm256_loadu_si256((const __m256i *)(cell + x));
        __m256 v = _mm256_loadu_ps(line + x);
        v = _mm256_sub_ps(v, _mm256_mul_ps(_mm256_i32gather_ps(table, k, 4),
                                           _mm256_loadu_ps(weight + x)));
        v = _mm256_sub_ps(v, _mm256_mul_ps(_mm256_i32gather_ps(table + 1, k, 4),
                                           _mm256_loadu_ps(weight + w + x)));
        v = _mm256_sub_ps(v, _mm256_mul_ps(_mm256_i32gather_ps(table + 256, k, 4),
                                           _mm256_loadu_ps(weight + 2 * w + x)));
        v = _mm256_sub_ps(v, _mm256_mul_ps(_mm256_i32gather_ps(table + 257, k, 4),
                                           _mm256_loadu_ps(weight + 3 * w + x)));
        _mm256_storeu_ps(line + x, v);
    }
    return x;
}
#endif

#if FUSED_PRODUCT
/* The first loop of `unbiased_line_body` (c == 3) for groups of 8 pixels by AVX2: each
   channel's 8 samples gathered as 32-bit words from the row and masked to their byte, then
   lane by lane the same float32 operations in the same order (unfused; clamps as max/min of
   finite values, the truncation of values >= 0 as the floor). A gather reads 4 bytes from a
   sample on, so only pixels before the last are gathered (3 x + 5 < 3 w). Returns the pixels
   done. */
static __attribute__((target("avx2"))) Py_ssize_t
unbiased_sums_avx2(const uint8_t *row, Py_ssize_t w, const float *mine, const float *wt,
                   float unit, int32_t *RESTRICT cell, float *RESTRICT weight,
                   float *RESTRICT line)
{
    const __m256i lanes = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
    const __m256i byte = _mm256_set1_epi32(0xFF), top = _mm256_set1_epi32(254);
    const __m256 zero = _mm256_setzero_ps(), most = _mm256_set1_ps(255.0f);
    const __m256 one = _mm256_set1_ps(1.0f), centre = _mm256_set1_ps(128.0f);
    const __m256 u = _mm256_set1_ps(unit);
    Py_ssize_t x = 0;
    for (; x + 8 < w; x += 8) {
        const int *at = (const int *)(const void *)(row + 3 * x);
        __m256 r = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_i32gather_epi32(at, lanes, 1),
                                                       byte));
        __m256 g = _mm256_cvtepi32_ps(_mm256_and_si256(
            _mm256_i32gather_epi32((const int *)(const void *)(row + 3 * x + 1), lanes, 1),
            byte));
        __m256 b = _mm256_cvtepi32_ps(_mm256_and_si256(
            _mm256_i32gather_epi32((const int *)(const void *)(row + 3 * x + 2), lanes, 1),
            byte));
#define SUM3(k0, k1, k2)                                                                      \
    _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(r, _mm256_set1_ps(k0)),          \
                                              _mm256_mul_ps(g, _mm256_set1_ps(k1))),         \
                                _mm256_mul_ps(b, _mm256_set1_ps(k2))),                       \
                  u)
        __m256 v = SUM3(mine[0], mine[1], mine[2]);
        __m256 cb = _mm256_add_ps(SUM3(wt[3], wt[4], wt[5]), centre);
        __m256 cr = _mm256_add_ps(SUM3(wt[6], wt[7], wt[8]), centre);
#undef SUM3
        cb = _mm256_min_ps(_mm256_max_ps(cb, zero), most);
        cr = _mm256_min_ps(_mm256_max_ps(cr, zero), most);
        __m256i ib = _mm256_min_epi32(_mm256_cvttps_epi32(cb), top);
        __m256i ir = _mm256_min_epi32(_mm256_cvttps_epi32(cr), top);
        __m256 fb = _mm256_sub_ps(cb, _mm256_cvtepi32_ps(ib));
        __m256 fr = _mm256_sub_ps(cr, _mm256_cvtepi32_ps(ir));
        __m256 gb = _mm256_sub_ps(one, fb), gr = _mm256_sub_ps(one, fr);
        _mm256_storeu_si256((__m256i *)(cell + x),
                            _mm256_add_epi32(_mm256_slli_epi32(ib, 8), ir));
        _mm256_storeu_ps(weight + x, _mm256_mul_ps(gb, gr));
        _mm256_storeu_ps(weight + w + x, _mm256_mul_ps(gb, fr));
        _mm256_storeu_ps(weight + 2 * w + x, _mm256_mul_ps(fb, gr));
        _mm256_storeu_ps(weight + 3 * w + x, _mm256_mul_ps(fb, fr));
        _mm256_storeu_ps(line + x, v);
    }
    return x;
}
#endif

/* One uint8 pixel row as Y', Cb or Cr (`plane`) less the decoder's rounding bias
   (codec.colour.unbiased): the three sums of wt[3 * i + k] * channel k, times unit, then the
   plane's bias table (65536 float32 by 8-bit Cb and Cr) read bilinearly at the pixel's chroma,
   every operation in float32 in numpy's order. Two loops: the sums, cell and weights (they
   vectorize), then the table reads (`unbiased_table`). `cell` and `weight` (4 per pixel) are
   scratch. */
ALWAYS_INLINE void unbiased_line_body(const uint8_t *row, Py_ssize_t w, Py_ssize_t c,
                                      Py_ssize_t plane, const float *wt, float unit,
                                      const float *RESTRICT table, int32_t *RESTRICT cell,
                                      float *RESTRICT weight, float *RESTRICT line)
{
    const float *mine = wt + 3 * plane;
    Py_ssize_t x = 0;
#if FUSED_PRODUCT
    if (simd_colour && c == 3)
        x = unbiased_sums_avx2(row, w, mine, wt, unit, cell, weight, line);
#endif
    for (; x < w; x++) {
        float r = row[c * x], g = row[c * x + 1], b = row[c * x + 2];
        float v = (r * mine[0] + g * mine[1] + b * mine[2]) * unit;
        float cb = (r * wt[3] + g * wt[4] + b * wt[5]) * unit + 128.0f;
        float cr = (r * wt[6] + g * wt[7] + b * wt[8]) * unit + 128.0f;
        /* max then min, as the AVX2 rows clamp: a NaN (a non-finite unit or weight) becomes
           0, not an int32 conversion out of range and a cell outside the table */
        cb = cb > 0.0f ? cb : 0.0f;
        cb = cb < 255.0f ? cb : 255.0f;
        cr = cr > 0.0f ? cr : 0.0f;
        cr = cr < 255.0f ? cr : 255.0f;
        int32_t ib = (int32_t)cb, ir = (int32_t)cr; /* >= 0: the floor */
        ib = ib < 254 ? ib : 254;
        ir = ir < 254 ? ir : 254;
        float fb = cb - (float)ib, fr = cr - (float)ir;
        cell[x] = ib * 256 + ir;
        weight[x] = (1.0f - fb) * (1.0f - fr);
        weight[1 * w + x] = (1.0f - fb) * fr;
        weight[2 * w + x] = fb * (1.0f - fr);
        weight[3 * w + x] = fb * fr;
        line[x] = v;
    }
    x = 0;
#if FUSED_PRODUCT
    if (simd_colour) /* (the colour output's switch: AVX2 here, and tests turn it off) */
        x = unbiased_table_avx2(table, cell, weight, line, w);
#endif
    unbiased_table(table, cell, weight, line, w, x);
}

HOT static void unbiased_line(const uint8_t *row, Py_ssize_t w, Py_ssize_t c, Py_ssize_t plane,
                              const float *wt, float unit, const float *table, int32_t *cell,
                              float *weight, float *line)
{
    if (c == 3) /* a stride the compiler knows */
        unbiased_line_body(row, w, 3, plane, wt, unit, table, cell, weight, line);
    else
        unbiased_line_body(row, w, c, plane, wt, unit, table, cell, weight, line);
}

/* Patch rows of a line: flat[base + gx * patch^2 + p] = line[gx * patch + p]. */
ALWAYS_INLINE void scatter_patches(char *flat, Py_ssize_t base, Py_ssize_t gw, Py_ssize_t patch,
                                   const float *line)
{
    for (Py_ssize_t gx = 0; gx < gw; gx++)
        memcpy(flat + 4 * (base + gx * patch * patch), line + gx * patch, 4 * (size_t)patch);
}

PyDoc_STRVAR(patch_plane_doc,
"patch_plane(px, y0, y1, channels, weights, unit, patch, out) -> None\n\n"
"encoder.source.PlaneSource.patches: rows [y0, y1) of image px (h, w, c), C-contiguous, uint8, uint16 or\n"
"float32, as one plane, the float32 sum of weights[k] * px[..., channels[k]] times unit\n"
"(one channel, or three: the first three), edge-padded to whole patches and written as\n"
"patch rows into out (patches, patch * patch). unit is rounded to float32.\n"
"With bias (3 x 65536 float32, C-contiguous): uint8 Y'CbCr plane `plane` less the decoder's rounding\n"
"bias (codec.colour.unbiased); weights then hold the 3 x 3 matrix, row by row. Without: less\n"
"offset (rounded to float32), after the product by unit.");

static PyObject *patch_plane(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"px", "y0", "y1", "channels", "weights", "unit", "patch", "out",
                            "bias", "plane", "offset", NULL};
    PyObject *o_px, *o_channels, *o_weights, *o_out, *o_bias = Py_None, *result = NULL;
    Py_ssize_t y0, y1, patch, plane = 0;
    float unit, wt[9], offset = 0.0f;
    Arr px = {0}, channels = {0}, weights = {0}, out = {0}, bias = {0};
    float *line = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnOOfnO|Onf:patch_plane", names, &o_px,
                                     &y0, &y1, &o_channels, &o_weights, &unit, &patch, &o_out,
                                     &o_bias, &plane, &offset))
        return NULL;
    int unbias = o_bias != Py_None;
    if (get_array(o_px, &px, "px", 3, T_U8 | T_U16 | T_F32, A_CONTIGUOUS) < 0
        || get_array(o_channels, &channels, "channels", 1, T_INTS, 0) < 0
        || get_array(o_weights, &weights, "weights", 1, T_F32, 0) < 0
        || get_array(o_out, &out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0
        || (unbias && get_array(o_bias, &bias, "bias", 2, T_F32, A_CONTIGUOUS) < 0))
        goto done;
    Py_ssize_t w = px.shape[1], c = px.shape[2], rows = y1 - y0;
    int three = channels.size == 3;
    if (y0 < 0 || y1 < y0 || y1 > px.shape[0] || patch < 1) {
        value_error("patch_plane: needs 0 <= y0 <= y1 <= h and patch >= 1");
        goto done;
    }
    if (!(channels.size == 1 || three) || weights.size < channels.size || (three && c < 3)) {
        value_error("patch_plane: one channel or three, as many weights");
        goto done;
    }
    Py_ssize_t first = ld_int(channels.data, channels.type);
    if (!three && (first < 0 || first >= c)) {
        value_error("patch_plane: channel beyond the image");
        goto done;
    }
    if (unbias && (px.type != T_U8 || !three || weights.size != 9 || plane < 0 || plane > 2
                   || bias.shape[0] != 3 || bias.shape[1] != 65536)) {
        value_error("patch_plane: bias needs uint8 pixels, three channels, 9 weights, "
                    "plane 0..2 and a 3 x 65536 table");
        goto done;
    }
    for (Py_ssize_t i = 0; i < 9; i++)
        wt[i] = ld_f32(weights.data + (i < weights.size ? i : 0) * weights.strides[0]);
    Py_ssize_t gw = (w + patch - 1) / patch, gh = (rows + patch - 1) / patch;
    Py_ssize_t line_size = mul_size(gw, patch);
    Py_ssize_t needed = mul_size(mul_size(gh, line_size), patch);
    if (line_size < 0 || needed < 0 || out.size < needed) {
        value_error("patch_plane: out too small for these rows");
        goto done;
    }
    /* the line, then (bias) 4 weights and a cell per pixel */
    line = malloc(sizeof(float) * (size_t)(line_size + 1 + (unbias ? 5 * w : 0)));
    if (line == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *weight = line + line_size + 1;
    int32_t *cell = (int32_t *)(weight + 4 * w);
    Py_ssize_t row_bytes = px.strides[0];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < gh * patch; y++) {
        const char *row = px.data + (y0 + (y < rows - 1 ? y : rows - 1)) * row_bytes;
        if (unbias)
            unbiased_line((const uint8_t *)row, w, c, plane, wt, unit,
                          (const float *)bias.data + 65536 * plane, cell, weight, line);
        else if (px.type == T_U8)
            plane_line_u8_any(row, w, c, three, first, wt, unit, offset, line);
        else if (px.type == T_U16)
            plane_line_u16(row, w, c, three, first, wt, unit, offset, line);
        else
            plane_line_f32(row, w, c, three, first, wt, unit, offset, line);
        for (Py_ssize_t x = w; x < line_size; x++) /* w >= 1 here: line_size > 0 */
            line[x] = line[w - 1];
        Py_ssize_t gy = y / patch, py = y % patch;
        Py_ssize_t base = gy * gw * patch * patch + py * patch;
        if (patch == 1) /* plain rows (codec.resample.least_squares_half's input) */
            memcpy(out.data + 4 * base, line, 4 * (size_t)w);
        else if (patch == 8) /* the sizes "auto" codes: a constant copy size */
            scatter_patches(out.data, base, gw, 8, line);
        else if (patch == 4)
            scatter_patches(out.data, base, gw, 4, line);
        else
            scatter_patches(out.data, base, gw, patch, line);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(line);
    release(&px);
    release(&channels);
    release(&weights);
    release(&out);
    release(&bias);
    return result;
}

/* ------------------------------------------------ least-squares chroma halving */

PyDoc_STRVAR(lsq_gather_doc,
"lsq_gather(rows, lo, v_index, v_weight, h_index, h_weight, out) -> None\n\n"
"codec.resample.least_squares_half's Uv^T X Uh for output rows k of out (k, n_w) float32, C-contiguous:\n"
"out[k] = sum over s of v_weight[k, s] * H[v_index[k, s] - lo], H[y][j] = sum over t of\n"
"h_weight[j, t] * rows[y, h_index[j, t]] (rows (n, in_w) float32, C-contiguous), each sum\n"
"from 0.0 in index order, in float32. Index tables int64, weights float32, C-contiguous.");

/* H[j] for j in [j0, j1) of one input row x, by the tables as they are (any taps). */
static void across_any(const float *x, const int64_t *h_index, const float *h_weight,
                       Py_ssize_t hs, Py_ssize_t j0, Py_ssize_t j1, float *hy)
{
    for (Py_ssize_t j = j0; j < j1; j++) {
        float h = 0.0f;
        for (Py_ssize_t t = 0; t < hs; t++)
            h += h_weight[j * hs + t] * x[h_index[j * hs + t]];
        hy[j] = h;
    }
}

/* H[j] for j in [j0, j1) where output j's four taps are input samples 2j-1, 2j, 2j+1, 2j+2
   (the decoder's 2x upsampling transposed: every output but the first and the last). The
   row is split into its odd and even samples, and the weights are given tap by tap (wt[t *
   nw + j]), so that the loop over j reads contiguous arrays and vectorizes; each H[j] is
   `across_any`'s operations in its order (from 0.0, tap after tap, no contraction): the same
   bits. The caller has checked that 2 j0 - 1 >= 0 and 2 (j1 - 1) + 2 < the row's length. */
HOT static void across_halving(const float *RESTRICT x, const float *RESTRICT wt,
                               Py_ssize_t nw, Py_ssize_t j0, Py_ssize_t j1,
                               float *RESTRICT even, float *RESTRICT odd, float *RESTRICT hy)
{
    for (Py_ssize_t m = j0 - 1; m < j1; m++) { /* odd[m] = x[2m + 1]: m = j - 1 and j */
        odd[m] = x[2 * m + 1];
        even[m + 1] = x[2 * m + 2]; /* even[j] and even[j + 1] */
    }
    const float *RESTRICT w0 = wt, *RESTRICT w1 = wt + nw, *RESTRICT w2 = wt + 2 * nw,
                          *RESTRICT w3 = wt + 3 * nw;
    for (Py_ssize_t j = j0; j < j1; j++) {
        float h = 0.0f;
        h += w0[j] * odd[j - 1];
        h += w1[j] * even[j];
        h += w2[j] * odd[j];
        h += w3[j] * even[j + 1];
        hy[j] = h;
    }
}

/* z[j] = sum over s of w[s] * h[s][j], from 0.0 in s order (with four taps, each z[j]'s sum
   in a register: the same operations in the same order). */
HOT static void gather_down(const float *const *h, const float *w, Py_ssize_t vs,
                            Py_ssize_t nw, float *RESTRICT z)
{
    if (vs == 4) { /* the halving's taps: the four terms of z[j] added in registers */
        const float *RESTRICT h0 = h[0], *RESTRICT h1 = h[1], *RESTRICT h2 = h[2],
                    *RESTRICT h3 = h[3];
        const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        for (Py_ssize_t j = 0; j < nw; j++) {
            float a = 0.0f;
            a += w0 * h0[j];
            a += w1 * h1[j];
            a += w2 * h2[j];
            a += w3 * h3[j];
            z[j] = a;
        }
        return;
    }
    for (Py_ssize_t j = 0; j < nw; j++)
        z[j] = 0.0f;
    for (Py_ssize_t s = 0; s < vs; s++) {
        const float *RESTRICT hy = h[s];
        float ws = w[s];
        for (Py_ssize_t j = 0; j < nw; j++)
            z[j] += ws * hy[j];
    }
}

/* How many rows of H lsq_gather keeps at once: the most rows one output row's taps span, if
   the first and the last of those rows never move up from one output row to the next (the
   halving's tables: each row of H is then made once, when first needed, into a ring of that
   many rows that stays in cache); 0 if they do (every row of H is then made first). */
static Py_ssize_t ring_rows(const int64_t *v_index, Py_ssize_t kk, Py_ssize_t vs)
{
    Py_ssize_t span = 1, last_lo = 0, last_hi = 0;
    for (Py_ssize_t k = 0; k < kk; k++) {
        Py_ssize_t a = v_index[k * vs], b = a;
        for (Py_ssize_t s = 1; s < vs; s++) {
            a = v_index[k * vs + s] < a ? v_index[k * vs + s] : a;
            b = v_index[k * vs + s] > b ? v_index[k * vs + s] : b;
        }
        if (k > 0 && (a < last_lo || b < last_hi))
            return 0;
        span = b - a + 1 > span ? b - a + 1 : span;
        last_lo = a, last_hi = b;
    }
    return span;
}

/* Whether output j's taps are 2j-1, 2j, 2j+1, 2j+2 (`across_halving`'s case). */
static int halving_taps(const int64_t *h_index, Py_ssize_t hs, Py_ssize_t j)
{
    if (hs != 4)
        return 0;
    for (Py_ssize_t t = 0; t < 4; t++)
        if (h_index[j * 4 + t] != 2 * j - 1 + t)
            return 0;
    return 1;
}

static PyObject *lsq_gather(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"rows", "lo", "v_index", "v_weight", "h_index", "h_weight", "out",
                            NULL};
    PyObject *o[6], *result = NULL;
    Py_ssize_t lo;
    Arr rows = {0}, vi = {0}, vw = {0}, hi = {0}, hw = {0}, out = {0};
    float *work = NULL;
    const float **taps = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOOOOO:lsq_gather", names, &o[0], &lo,
                                     &o[1], &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    if (get_array(o[0], &rows, "rows", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o[1], &vi, "v_index", 2, T_I64, A_CONTIGUOUS) < 0
        || get_array(o[2], &vw, "v_weight", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o[3], &hi, "h_index", 2, T_I64, A_CONTIGUOUS) < 0
        || get_array(o[4], &hw, "h_weight", 2, T_F32, A_CONTIGUOUS) < 0
        || get_array(o[5], &out, "out", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t n = rows.shape[0], in_w = rows.shape[1], kk = out.shape[0], nw = out.shape[1];
    Py_ssize_t vs = vi.shape[1], hs = hi.shape[1];
    if (vi.shape[0] != kk || vw.shape[0] != kk || vw.shape[1] != vs || hi.shape[0] != nw
        || hw.shape[0] != nw || hw.shape[1] != hs) {
        value_error("lsq_gather: tables and out of mismatched shapes");
        goto done;
    }
    const int64_t *v_index = (const int64_t *)vi.data, *h_index = (const int64_t *)hi.data;
    for (Py_ssize_t i = 0; i < vi.size; i++) /* the difference as uint64: exact, no overflow */
        if (v_index[i] < lo || (uint64_t)v_index[i] - (uint64_t)lo >= (uint64_t)n) {
            value_error("lsq_gather: a row index outside the rows given");
            goto done;
        }
    for (Py_ssize_t i = 0; i < hi.size; i++)
        if (h_index[i] < 0 || h_index[i] >= in_w) {
            value_error("lsq_gather: a column index outside the rows");
            goto done;
        }
    /* The run of outputs [j0, j1) whose taps are the halving's (every index checked above:
       2 j0 - 1 >= 0 and 2 (j1 - 1) + 2 < in_w follow) */
    Py_ssize_t j0 = 0;
    while (j0 < nw && !halving_taps(h_index, hs, j0))
        j0++;
    Py_ssize_t j1 = j0;
    while (j1 < nw && halving_taps(h_index, hs, j1))
        j1++;
    /* Each row of H made once (each feeds about two output rows): as the output rows come to
       need it, into a ring of `ring` rows, or all of them first where the tables do not
       move down in order. The weights by tap and a row's even and odd samples for
       `across_halving`. */
    Py_ssize_t ring = vs > 0 ? ring_rows(v_index, kk, vs) : 1;
    int whole = ring == 0 || ring >= n;
    if (whole)
        ring = n > 0 ? n : 1;
    Py_ssize_t half = in_w / 2 + 1;
    /* the ring, the weights by tap, the even and odd samples, in floats (sizes checked: the
       ring of a tall table times a wide output could pass a 32-bit size_t) */
    Py_ssize_t ring_cells = mul_size(ring, nw), tap_cells = mul_size(4, nw);
    Py_ssize_t cells = ring_cells < 0 || tap_cells < 0
                       || ring_cells > PY_SSIZE_T_MAX / 2 - tap_cells - half - 1
                       ? -1 : ring_cells + tap_cells + 2 * half + 1;
    Py_ssize_t work_bytes = cells < 0 ? -1 : mul_size(cells, (Py_ssize_t)sizeof(float));
    if (work_bytes < 0 || (work = malloc((size_t)work_bytes)) == NULL
        || (vs > 0 && (taps = malloc(sizeof(float *) * (size_t)vs)) == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    float *hrow = work, *wt = hrow + ring * nw, *even = wt + 4 * nw, *odd = even + half;
    const float *v_weight = (const float *)vw.data, *h_weight = (const float *)hw.data;
    Py_BEGIN_ALLOW_THREADS
    if (j1 > j0)
        for (Py_ssize_t j = j0; j < j1; j++)
            for (Py_ssize_t t = 0; t < 4; t++)
                wt[t * nw + j] = h_weight[j * 4 + t];
    /* rows by their offset from lo (checked above to lie in [0, n)): no sum of an index
       and lo, which could pass int64's range */
    Py_ssize_t next = 0; /* the first row whose H is not made */
    for (Py_ssize_t k = 0; k < kk; k++) {
        const int64_t *vk = v_index + k * vs;
        Py_ssize_t first = n, last = -1; /* this output row's taps */
        for (Py_ssize_t s = 0; s < vs; s++) {
            Py_ssize_t r = (Py_ssize_t)((uint64_t)vk[s] - (uint64_t)lo);
            first = r < first ? r : first;
            last = r > last ? r : last;
            taps[s] = hrow + r % ring * nw;
        }
        if (whole)
            last = n - 1;
        else if (vs > 0 && first > next) /* rows above this output row's taps: never needed */
            next = first;
        for (; next <= last; next++) {
            const float *x = (const float *)rows.data + next * in_w;
            float *hy = hrow + next % ring * nw;
            across_any(x, h_index, h_weight, hs, 0, j0, hy);
            if (j1 > j0)
                across_halving(x, wt, nw, j0, j1, even, odd, hy);
            across_any(x, h_index, h_weight, hs, j1, nw, hy);
        }
        gather_down(taps, v_weight + k * vs, vs, nw, (float *)out.data + k * nw);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(taps);
    free(work);
    release(&rows);
    release(&vi);
    release(&vw);
    release(&hi);
    release(&hw);
    release(&out);
    return result;
}

/* y (n, b) <- x with L L^T x = y along axis 0, rows `stride` values apart: row by row of n,
   each step vectorized along the b columns, in numpy's order (codec.resample.solve_normal).
   Each column's values take the same operations whichever columns are solved with it. */
HOT static void solve_columns(float *RESTRICT data, Py_ssize_t n, Py_ssize_t b,
                              Py_ssize_t stride, const float *RESTRICT L, Py_ssize_t width)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        float *RESTRICT y = data + i * stride;
        for (Py_ssize_t k = 1; k < width && k <= i; k++) {
            float c = L[k * n + i];
            const float *RESTRICT u = data + (i - k) * stride;
            for (Py_ssize_t x = 0; x < b; x++)
                y[x] -= c * u[x];
        }
        float d = L[i];
        for (Py_ssize_t x = 0; x < b; x++)
            y[x] /= d;
    }
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        float *RESTRICT y = data + i * stride;
        for (Py_ssize_t k = 1; k < width && k < n - i; k++) {
            float c = L[k * n + i + k];
            const float *RESTRICT u = data + (i + k) * stride;
            for (Py_ssize_t x = 0; x < b; x++)
                y[x] -= c * u[x];
        }
        float d = L[i];
        for (Py_ssize_t x = 0; x < b; x++)
            y[x] /= d;
    }
}

/* out (b, a) = in (a, b) transposed, in tiles that stay in cache; with vector types, 4 x 4
   blocks in registers (four loads, eight shuffles), the edges value by value. */
HOT static void transpose(const float *in, float *out, Py_ssize_t a, Py_ssize_t b)
{
    const Py_ssize_t tile = 32;
    for (Py_ssize_t i0 = 0; i0 < a; i0 += tile)
        for (Py_ssize_t j0 = 0; j0 < b; j0 += tile) {
            Py_ssize_t i1 = i0 + tile < a ? i0 + tile : a, j1 = j0 + tile < b ? j0 + tile : b;
            Py_ssize_t i4 = i0, j4 = j0; /* the ends of the 4 x 4 blocks */
#ifdef VECTOR_TYPES
            i4 = i0 + (i1 - i0) / 4 * 4, j4 = j0 + (j1 - j0) / 4 * 4;
            for (Py_ssize_t i = i0; i < i4; i += 4)
                for (Py_ssize_t j = j0; j < j4; j += 4) {
                    quarter_f32 r0, r1, r2, r3;
                    memcpy(&r0, in + i * b + j, sizeof r0);
                    memcpy(&r1, in + (i + 1) * b + j, sizeof r1);
                    memcpy(&r2, in + (i + 2) * b + j, sizeof r2);
                    memcpy(&r3, in + (i + 3) * b + j, sizeof r3);
                    quarter_f32 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
                    quarter_f32 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                    quarter_f32 t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
                    quarter_f32 t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
                    quarter_f32 c[4] = {__builtin_shufflevector(t0, t2, 0, 1, 4, 5),
                                        __builtin_shufflevector(t0, t2, 2, 3, 6, 7),
                                        __builtin_shufflevector(t1, t3, 0, 1, 4, 5),
                                        __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};
                    for (int t = 0; t < 4; t++)
                        memcpy(out + (j + t) * a + i, &c[t], sizeof c[t]);
                }
#endif
            for (Py_ssize_t i = i0; i < i1; i++) /* the edges: rows i4.., columns j4.. */
                for (Py_ssize_t j = i < i4 ? j4 : j0; j < j1; j++)
                    out[j * a + i] = in[i * b + j];
        }
}

PyDoc_STRVAR(banded_solve_doc,
"banded_solve(z, chol, axis, start=0, stop=-1) -> None\n\n"
"codec.resample.solve_normal in place: z (a, b) float32 C-contiguous solved by L L^T along axis 0\n"
"(columns of length a) or 1 (rows of length b), L banded (chol (width, n) float32, L[i, i - k]\n"
"at [k, i]): forward then backward substitution, each step in numpy's order (axis 1 on\n"
"transposed blocks of rows, the same operations on every element). Along axis 0, only the\n"
"columns [start, stop) (stop -1: b), whose values are those of the whole call: threads can\n"
"solve ranges of columns apart.");

static PyObject *banded_solve(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"z", "chol", "axis", "start", "stop", NULL};
    PyObject *o_z, *o_chol, *result = NULL;
    int axis;
    Py_ssize_t start = 0, stop = -1;
    Arr z = {0}, ch = {0};
    float *flipped = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOi|nn:banded_solve", names, &o_z,
                                     &o_chol, &axis, &start, &stop))
        return NULL;
    if (get_array(o_z, &z, "z", 2, T_F32, A_WRITABLE | A_CONTIGUOUS) < 0
        || get_array(o_chol, &ch, "chol", 2, T_F32, A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t a = z.shape[0], b = z.shape[1], width = ch.shape[0], n = ch.shape[1];
    if (!(axis == 0 || axis == 1) || n != (axis == 0 ? a : b) || width < 1) {
        value_error("banded_solve: axis 0 or 1, chol of (width >= 1, length of that axis)");
        goto done;
    }
    if (stop == -1)
        stop = b;
    if (start < 0 || start > stop || stop > b || (axis == 1 && (start != 0 || stop != b))) {
        value_error("banded_solve: columns 0 <= start <= stop <= b, along axis 0 only");
        goto done;
    }
    /* rows solved together along axis 1, transposed: 32 divisions' chains in flight at each
       step (four AVX2 vectors), where 16 waited on the divisions' latency */
    const Py_ssize_t block = 32;
    if (axis == 1) {
        flipped = malloc(sizeof(float) * (size_t)(block * b + 1));
        if (flipped == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    const float *L = (const float *)ch.data;
    float *data = (float *)z.data;
    Py_BEGIN_ALLOW_THREADS
    if (axis == 0) {
        solve_columns(data + start, n, stop - start, b, L, width);
    } else {
        for (Py_ssize_t r0 = 0; r0 < a; r0 += block) {
            Py_ssize_t rows = a - r0 < block ? a - r0 : block;
            transpose(data + r0 * b, flipped, rows, b);
            solve_columns(flipped, n, rows, rows, L, width);
            transpose(flipped, data + r0 * b, b, rows);
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(flipped);
    release(&z);
    release(&ch);
    return result;
}

PyDoc_STRVAR(banded_cholesky_doc,
"banded_cholesky(gram, out) -> None\n\n"
"codec.resample.banded_cholesky into out: the Cholesky factor L of the positive definite banded\n"
"matrix gram ((width, n) float64, C-contiguous, gram[k, i] its row i, column i - k), L stored\n"
"alike in out ((width, n) float64, C-contiguous, writable, apart from gram). Each entry the Python\n"
"twin's binary64 operations in its order: a sum of products from 0.0, subtracted from the\n"
"entry, then one square root (k = 0) or division by L[j, j]. ValueError where a square root's\n"
"argument is negative, ZeroDivisionError for a zero divisor, as the twin's math.sqrt and /.");

static PyObject *banded_cholesky(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"gram", "out", NULL};
    PyObject *o_gram, *o_out, *result = NULL;
    Arr gram = {0}, out = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:banded_cholesky", names, &o_gram,
                                     &o_out))
        return NULL;
    if (get_array(o_gram, &gram, "gram", 2, T_F64, A_CONTIGUOUS) < 0
        || get_array(o_out, &out, "out", 2, T_F64, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t width = gram.shape[0], n = gram.shape[1];
    if (out.shape[0] != width || out.shape[1] != n) {
        value_error("banded_cholesky: gram and out of different shapes");
        goto done;
    }
    if (width == 0 || n == 0) { /* nothing to factor (the twin's loop makes no step) */
        result = Py_NewRef(Py_None);
        goto done;
    }
    size_t span = sizeof(double) * (size_t)width * (size_t)n; /* both hold width * n */
    if ((char *)out.data < gram.data + span && gram.data < (char *)out.data + span) {
        value_error("banded_cholesky: out overlaps gram");
        goto done;
    }
    const double *a = (const double *)gram.data;
    double *L = (double *)out.data;
    int failed = 0; /* 1: a negative square root, 2: a zero divisor */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < width * n; i++)
        L[i] = 0.0;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        for (Py_ssize_t k = (width - 1 < i ? width - 1 : i); k >= 0; k--) {
            Py_ssize_t j = i - k;
            Py_ssize_t stop = width - k < j + 1 ? width - k : j + 1;
            double products = 0.0;
            for (Py_ssize_t m = 1; m < stop; m++)
                products += L[(k + m) * n + i] * L[m * n + j];
            double total = a[k * n + i] - products;
            if (k == 0) {
                if (total < 0.0) {
                    failed = 1;
                    break;
                }
                L[i] = sqrt(total);
            } else {
                if (L[j] == 0.0) {
                    failed = 2;
                    break;
                }
                L[k * n + i] = total / L[j];
            }
        }
    }
    Py_END_ALLOW_THREADS
    if (failed == 1)
        PyErr_SetString(PyExc_ValueError, "math domain error");
    else if (failed == 2)
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
    else
        result = Py_NewRef(Py_None);
done:
    release(&gram);
    release(&out);
    return result;
}

/* float32 -> int32 as x86's truncating conversion (numpy's): INT32_MIN for NaN and values
   below the range (values above it are clamped by the caller). */
ALWAYS_INLINE int32_t to_int32(float v)
{
    return v >= -2147483648.0f ? (int32_t)v : INT32_MIN;
}

typedef struct {
    const char *values;
    Py_ssize_t rows, cols, v_row, v_col;
    float rounding; /* every column's but the first's (that is inside `roundings`) */
    char *ints;
    Py_ssize_t i_row, i_col;
    int ints_type;
    const float *inv_steps; /* per column: the column's inverse step (a contiguous copy) */
    const float *roundings; /* per column: `first_rounding` in column 0, else `rounding` */
    double *top, *error; /* contiguous working copies, written back by the caller */
    double *squares;     /* likewise (zeros, not written back, when the caller asks for none) */
} Quantize;

/* `quantize` of one value x of column j, as the loops below share it: its integer (wrapped
   to int32, or the magnitude if not SIGNED) and the column's sums updated; true if it
   overflows int32. */
#define QUANTIZE_ONE(x, inv, rounding, error, top, squares, over, out, SIGNED)                \
    do {                                                                                       \
        const float ceiling_ = 2147483520.0f; /* the largest float32 below 2**31 */           \
        float scaled_ = fabsf(x) * (inv) + (rounding);                                         \
        (over) |= scaled_ > ceiling_;                                                          \
        int32_t t_ = to_int32(ceiling_ < scaled_ ? ceiling_ : scaled_);                        \
        float d_ = scaled_ - (float)t_ - (rounding);                                           \
        double m_ = t_;                                                                        \
        (squares) += m_ * m_; /* exact below 2**53: the order of numpy's sum */                \
        (error) += (double)d_ * (double)d_;                                                    \
        (top) = m_ > (top) ? m_ : (top);                                                       \
        /* Negated with wrapping: the low 32 bits of numpy's int64 negation. */                \
        (out) = (SIGNED) && (x) < 0 ? (int32_t)(0u - (uint32_t)t_) : t_;                       \
    } while (0)

/* Columns of a strip of `quantize` (8 float32 to a 32-byte vector), and the rows quantized
   strip after strip (a few KiB of values: they stay in L1) */
#define STRIP 8
#define STRIP_ROWS 64

#ifdef VECTOR_TYPES

/* The sums of half H (0: columns 0-3, 1: columns 4-7) of a strip updated by its values'
   errors d and integers t (a macro: vector arguments of a function change the psABI). */
#define STRIP_SUMS(d, t, H, error, top, squares)                                               \
    do {                                                                                       \
        half_f64 e_ = __builtin_convertvector(                                                 \
            __builtin_shufflevector((d), (d), 4 * (H), 4 * (H) + 1, 4 * (H) + 2, 4 * (H) + 3), \
            half_f64);                                                                         \
        half_f64 m_ = __builtin_convertvector(                                                 \
            __builtin_shufflevector((t), (t), 4 * (H), 4 * (H) + 1, 4 * (H) + 2, 4 * (H) + 3), \
            half_f64);                                                                         \
        (squares) += m_ * m_;                                                                  \
        (error) += e_ * e_;                                                                    \
        half_i64 above_ = m_ > (top);                                                          \
        (top) = (half_f64)(((half_i64)m_ & above_) | ((half_i64)(top) & ~above_));             \
    } while (0)

/* Columns c0..c0 + STRIP of rows r0..r1 of a contiguous float32 matrix into contiguous int16
   or int32 rows (type T), as QUANTIZE_ONE does them one by one: the same IEEE operations on
   STRIP values at a time (GCC/Clang vector types: AVX2 instructions in the AVX2 clone), the
   strip's sums kept in registers from row r0 to r1. Every sum still adds its rows in order
   (the caller takes the blocks of rows in order): the same bits. */
#define DEFINE_QUANTIZE_STRIP(NAME, T)                                                         \
    ALWAYS_INLINE int32_t NAME(const Quantize *z, Py_ssize_t c0, Py_ssize_t r0, Py_ssize_t r1) \
    {                                                                                          \
        const strip_f32 zero = {0.0f}, ceiling = zero + 2147483520.0f;                         \
        const strip_f32 lowest = zero - 2147483648.0f;                                         \
        strip_f32 inv, rounding;                                                               \
        half_f64 error[2], top[2], squares[2];                                                 \
        memcpy(&inv, z->inv_steps + c0, sizeof inv);                                           \
        memcpy(&rounding, z->roundings + c0, sizeof rounding);                                 \
        memcpy(error, z->error + c0, sizeof error);                                            \
        memcpy(top, z->top + c0, sizeof top);                                                  \
        memcpy(squares, z->squares + c0, sizeof squares);                                      \
        strip_i32 over = {0};                                                                  \
        for (Py_ssize_t i = r0; i < r1; i++) {                                                 \
            strip_f32 x;                                                                       \
            memcpy(&x, z->values + i * z->v_row + 4 * c0, sizeof x);                           \
            strip_f32 scaled = (strip_f32)((strip_i32)x & 0x7FFFFFFF) * inv + rounding;        \
            strip_i32 high = ceiling < scaled;                                                 \
            over |= scaled > ceiling;                                                          \
            strip_f32 kept = (strip_f32)(((strip_i32)ceiling & high)                           \
                                         | ((strip_i32)scaled & ~high));                       \
            strip_i32 in_range = kept >= lowest; /* to_int32 */                                \
            strip_i32 t = (__builtin_convertvector(kept, strip_i32) & in_range)                \
                          | (INT32_MIN & ~in_range);                                           \
            strip_f32 d = scaled - __builtin_convertvector(t, strip_f32) - rounding;           \
            STRIP_SUMS(d, t, 0, error[0], top[0], squares[0]);                                 \
            STRIP_SUMS(d, t, 1, error[1], top[1], squares[1]);                                 \
            strip_i32 negative = x < zero;                                                     \
            strip_i32 s = (strip_i32)((strip_i32)((0u - (strip_u32)t) & (strip_u32)negative)  \
                                      | (t & ~negative));                                      \
            STORE_STRIP_##T(z->ints + i * z->i_row + sizeof(T) * c0, s);                       \
        }                                                                                      \
        memcpy(z->error + c0, error, sizeof error);                                            \
        memcpy(z->top + c0, top, sizeof top);                                                  \
        memcpy(z->squares + c0, squares, sizeof squares);                                      \
        int32_t any = 0;                                                                       \
        for (int k = 0; k < STRIP; k++)                                                        \
            any |= over[k];                                                                    \
        return any != 0;                                                                       \
    }
#define STORE_STRIP_int32_t(p, s) memcpy((p), &(s), sizeof(strip_i32))
#define STORE_STRIP_int16_t(p, s)                                                              \
    do {                                                                                       \
        strip_i16 narrow = __builtin_convertvector((s), strip_i16); /* wraps */                \
        memcpy((p), &narrow, sizeof narrow);                                                   \
    } while (0)
DEFINE_QUANTIZE_STRIP(quantize_strip_i16, int16_t)
DEFINE_QUANTIZE_STRIP(quantize_strip_i32, int32_t)
#endif

#if FUSED_PRODUCT
/* `quantize_strip_i16`/`_i32` by AVX2 intrinsics (`encoder_kernels` 1): the same operations
   lane by lane, unfused, so the same bits. The generic vector code widens each half of a
   strip to float64 through the stack (a store, then two 2-lane conversions of the reloaded
   halves, which wait on the store); here one vcvtps2pd/vcvtdq2pd each. The truncation is
   cvttps2dq's, whose "integer indefinite" 0x80000000 for NaN and values out of range is the
   generic code's INT32_MIN; the int16 stores keep the low 16 bits (wrapping, as the
   generic __builtin_convertvector). */
static __attribute__((target("avx2"))) int32_t
quantize_strip_avx2(const Quantize *z, Py_ssize_t c0, Py_ssize_t r0, Py_ssize_t r1, int i16)
{
    const __m256 ceiling = _mm256_set1_ps(2147483520.0f), zero = _mm256_setzero_ps();
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    const __m256 inv = _mm256_loadu_ps(z->inv_steps + c0);
    const __m256 rounding = _mm256_loadu_ps(z->roundings + c0);
    __m256d error0 = _mm256_loadu_pd(z->error + c0), error1 = _mm256_loadu_pd(z->error + c0 + 4);
    __m256d top0 = _mm256_loadu_pd(z->top + c0), top1 = _mm256_loadu_pd(z->top + c0 + 4);
    __m256d squares0 = _mm256_loadu_pd(z->squares + c0);
    __m256d squares1 = _mm256_loadu_pd(z->squares + c0 + 4);
    __m256 over = zero;
    for (Py_ssize_t i = r0; i < r1; i++) {
        __m256 x = _mm256_loadu_ps((const float *)(const void *)(z->values + i * z->v_row) + c0);
        __m256 scaled = _mm256_add_ps(_mm256_mul_ps(_mm256_and_ps(x, magnitude), inv),
                                      rounding);
        __m256 high = _mm256_cmp_ps(ceiling, scaled, _CMP_LT_OQ);
        over = _mm256_or_ps(over, high);
        __m256i t = _mm256_cvttps_epi32(_mm256_blendv_ps(scaled, ceiling, high));
        __m256 d = _mm256_sub_ps(_mm256_sub_ps(scaled, _mm256_cvtepi32_ps(t)), rounding);
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
        __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
        __m256d m0 = _mm256_cvtepi32_pd(_mm256_castsi256_si128(t));
        __m256d m1 = _mm256_cvtepi32_pd(_mm256_extracti128_si256(t, 1));
        squares0 = _mm256_add_pd(squares0, _mm256_mul_pd(m0, m0));
        squares1 = _mm256_add_pd(squares1, _mm256_mul_pd(m1, m1));
        error0 = _mm256_add_pd(error0, _mm256_mul_pd(d0, d0));
        error1 = _mm256_add_pd(error1, _mm256_mul_pd(d1, d1));
        top0 = _mm256_blendv_pd(top0, m0, _mm256_cmp_pd(m0, top0, _CMP_GT_OQ));
        top1 = _mm256_blendv_pd(top1, m1, _mm256_cmp_pd(m1, top1, _CMP_GT_OQ));
        __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_LT_OQ));
        __m256i s = _mm256_sub_epi32(_mm256_xor_si256(t, negative), negative);
        char *out = z->ints + i * z->i_row;
        if (i16) {
            __m256i packed = _mm256_permute4x64_epi64(
                _mm256_packus_epi32(_mm256_and_si256(s, low16), _mm256_setzero_si256()), 0xD8);
            _mm_storeu_si128((__m128i *)(void *)(out + 2 * c0), _mm256_castsi256_si128(packed));
        } else {
            _mm256_storeu_si256((__m256i *)(void *)(out + 4 * c0), s);
        }
    }
    _mm256_storeu_pd(z->error + c0, error0);
    _mm256_storeu_pd(z->error + c0 + 4, error1);
    _mm256_storeu_pd(z->top + c0, top0);
    _mm256_storeu_pd(z->top + c0 + 4, top1);
    _mm256_storeu_pd(z->squares + c0, squares0);
    _mm256_storeu_pd(z->squares + c0 + 4, squares1);
    return _mm256_movemask_ps(over) != 0;
}
#endif

/* The encoder's loops in use (`encoder_kernels` switches, for tests): 0 the generic ones, 1
   those by AVX2 intrinsics (`quantize_strip_avx2` for quantize's strips, `symbols_i16_rows16`
   for symbols' rows of at most 16 16-bit integers), the best the CPU runs, chosen at import. */
static int best_encoder, encoder_level;

/* Whether this build quantizes strips at `level` (`quantize_strip`; else value by value). */
static int quantize_strips(int level)
{
#ifdef VECTOR_TYPES
    (void)level;
    return 1;
#else
    return FUSED_PRODUCT && level;
#endif
}

/* One strip of `quantize` (columns c0..c0 + STRIP of rows r0..r1): by AVX2 at `level` 1, else
   by the generic vector code; where `quantize_strips(level)` is true. */
static int32_t quantize_strip(const Quantize *z, Py_ssize_t c0, Py_ssize_t r0, Py_ssize_t r1,
                              int i16, int level)
{
#if FUSED_PRODUCT
    if (level)
        return quantize_strip_avx2(z, c0, r0, r1, i16);
#endif
#ifdef VECTOR_TYPES
    return i16 ? quantize_strip_i16(z, c0, r0, r1) : quantize_strip_i32(z, c0, r0, r1);
#else
    (void)z, (void)c0, (void)r0, (void)r1, (void)i16, (void)level;
    return 0; /* not reached: quantize_strips(level) is false */
#endif
}

/* The loops of `quantize`. A contiguous, aligned float32 matrix into contiguous int16 or
   int32 rows (the encoder's U and V) goes in strips of STRIP columns; the other columns, and
   other layouts, row after row, value after value (int64 keeps the negation's 33rd bit). */
HOT static int quantize_run(const Quantize *z)
{
    const float ceiling = 2147483520.0f;
    const Py_ssize_t cols = z->cols;
    const float *inv = z->inv_steps, *rounding = z->roundings;
    int direct_in = z->v_col == 4 && z->v_row % 4 == 0 && (uintptr_t)z->values % 4 == 0;
    int i16 = z->ints_type == T_I16 && z->i_col == 2 && z->i_row % 2 == 0
              && (uintptr_t)z->ints % 2 == 0;
    int i32 = z->ints_type == T_I32 && z->i_col == 4 && z->i_row % 4 == 0
              && (uintptr_t)z->ints % 4 == 0;
    int32_t over = 0;
    Py_ssize_t done = 0; /* columns quantized in strips */
    if (direct_in && (i16 || i32) && quantize_strips(encoder_level)) {
        done = cols / STRIP * STRIP;
        /* every strip of STRIP_ROWS rows before the next rows: each row is read from memory
           once, the strips after the first from the cache */
        for (Py_ssize_t r0 = 0; r0 < z->rows; r0 += STRIP_ROWS) {
            Py_ssize_t r1 = z->rows - r0 < STRIP_ROWS ? z->rows : r0 + STRIP_ROWS;
            for (Py_ssize_t c0 = 0; c0 < done; c0 += STRIP)
                over |= quantize_strip(z, c0, r0, r1, i16, encoder_level);
        }
    }
    for (Py_ssize_t i = 0; i < z->rows && done < cols; i++) {
        const char *v = z->values + i * z->v_row;
        char *out = z->ints + i * z->i_row;
        for (Py_ssize_t j = done; j < cols; j++) {
            float x = ld_f32(v + j * z->v_col);
            int32_t q;
            QUANTIZE_ONE(x, inv[j], rounding[j], z->error[j], z->top[j], z->squares[j], over,
                         q, 0);
            st_int(out + j * z->i_col, z->ints_type, x < 0 ? -(int64_t)q : (int64_t)q);
        }
    }
    /* column 0's value with the others' rounding too, as the loops before checked it */
    for (Py_ssize_t i = 0; i < z->rows && cols > 0; i++)
        over |= fabsf(ld_f32(z->values + i * z->v_row)) * inv[0] + z->rounding > ceiling;
    return over == 0;
}

PyDoc_STRVAR(quantize_doc,
"quantize(values, inv_step, rounding, ints, top, error, first_rounding=rounding,\n"
"         squares=None, inv_steps=None) -> bool\n\n"
"codec.quantize.ColumnStats.add: ints = dead-zone quantized values (rows, cols) of float32\n"
"values (any integer type, wrapped to it), column 0 with first_rounding; per column, top =\n"
"max |int|, error += squared error in steps and squares += the integers' squares (float64,\n"
"row after row). False if a value overflows int32. inv_step and the roundings are rounded\n"
"to float32. inv_steps (float32, one per column): each column's own inverse step instead\n"
"of inv_step (its error then in its own steps).");

static PyObject *quantize(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"values", "inv_step", "rounding", "ints", "top", "error",
                            "first_rounding", "squares", "inv_steps", NULL};
    PyObject *o_values, *o_ints, *o_top, *o_error, *o_squares = Py_None;
    PyObject *o_inv_steps = Py_None, *result = NULL;
    float inv_step, rounding, first_rounding = NAN;
    Arr values = {0}, ints = {0}, top = {0}, error = {0}, squares = {0}, inv_steps = {0};
    double *sums = NULL;
    float *inverses = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OffOOO|fOO:quantize", names, &o_values,
                                     &inv_step, &rounding, &o_ints, &o_top, &o_error,
                                     &first_rounding, &o_squares, &o_inv_steps))
        return NULL;
    if (isnan(first_rounding))
        first_rounding = rounding;
    int with_squares = o_squares != Py_None, with_steps = o_inv_steps != Py_None;
    if (get_array(o_values, &values, "values", 2, T_F32, 0) < 0
        || get_array(o_ints, &ints, "ints", 2, T_INTS, A_WRITABLE) < 0
        || get_array(o_top, &top, "top", 1, T_F64, A_WRITABLE) < 0
        || get_array(o_error, &error, "error", 1, T_F64, A_WRITABLE) < 0
        || (with_squares
            && get_array(o_squares, &squares, "squares", 1, T_F64, A_WRITABLE) < 0)
        || (with_steps && get_array(o_inv_steps, &inv_steps, "inv_steps", 1, T_F32, 0) < 0))
        goto done;
    Py_ssize_t rows = values.shape[0], cols = values.shape[1];
    if (ints.shape[0] != rows || ints.shape[1] != cols || top.size < cols
        || error.size < cols || (with_squares && squares.size < cols)
        || (with_steps && inv_steps.size < cols)) {
        value_error("quantize: ints must have values' shape, top, error, squares and "
                    "inv_steps a value per column");
        goto done;
    }
    /* top, error and squares (cols doubles each), then the inverse steps and roundings */
    Py_ssize_t sum_bytes = mul_size(cols + 1, 3 * (Py_ssize_t)sizeof(double)
                                               + 2 * (Py_ssize_t)sizeof(float));
    sums = sum_bytes < 0 ? NULL : malloc((size_t)sum_bytes);
    if (sums == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    inverses = (float *)(sums + 3 * cols);
    float *roundings = inverses + cols;
    for (Py_ssize_t j = 0; j < cols; j++) {
        inverses[j] = with_steps ? ld_f32(inv_steps.data + j * inv_steps.strides[0]) : inv_step;
        roundings[j] = j ? rounding : first_rounding;
    }
    Quantize z = {values.data, rows, cols, values.strides[0], values.strides[1], rounding,
                  ints.data, ints.strides[0], ints.strides[1], ints.type, inverses, roundings,
                  sums, sums + cols, sums + 2 * cols};
    int ok;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < cols; j++) {
        z.top[j] = ld_f64(top.data + j * top.strides[0]);
        z.error[j] = ld_f64(error.data + j * error.strides[0]);
        z.squares[j] = with_squares ? ld_f64(squares.data + j * squares.strides[0]) : 0.0;
    }
    ok = quantize_run(&z);
    for (Py_ssize_t j = 0; j < cols; j++) {
        st_f64(top.data + j * top.strides[0], z.top[j]);
        st_f64(error.data + j * error.strides[0], z.error[j]);
        if (with_squares)
            st_f64(squares.data + j * squares.strides[0], z.squares[j]);
    }
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(ok);
done:
    free(sums);
    release(&values);
    release(&ints);
    release(&top);
    release(&error);
    release(&squares);
    release(&inv_steps);
    return result;
}

PyDoc_STRVAR(lattice_integers_doc,
"lattice_integers(coefficients, steps, rounding, first_rounding, ints, largest, nonzero)\n"
"    -> bool\n\n"
"codec.quantize.quantize_columns and what codec.refine.fit_basis reads of a round: ints\n"
"(rows, cols) int32 = the floor of |c / steps[j]| plus the column's offset (first_rounding\n"
"in column 0, rounding in the others, both rounded to float32), negated where c / steps[j]\n"
"< 0, in binary64 as numpy computes it, of float32 coefficients (rows, cols, any strides)\n"
"and float64 steps (one per column); largest (rows) float32 = each row's largest |c| beyond\n"
"column 0 (0 for one column); nonzero (cols) bool = whether the column has an integer other\n"
"than 0. False (the outputs then partly written) if a value is NaN or does not fit int32.");

/* One row of `lattice_integers` (contiguous coefficients and integers, the row's own or
   gathered): the loop without a branch, so that it vectorizes (the division and the truncation lane by lane, the same IEEE
   operations); returns the row's largest |c| beyond column 0 as float32 bits (the bits of
   values >= 0 order as the values do; a NaN fails `fits` before they count). */
HOT static uint32_t lattice_row(const float *RESTRICT c, int32_t *RESTRICT q,
                                const double *RESTRICT step, const double *RESTRICT offset,
                                uint8_t *RESTRICT used, Py_ssize_t cols, int *ok)
{
    uint32_t top = 0;
    int fits_all = 1;
    for (Py_ssize_t j = 0; j < cols; j++) {
        double v = (double)c[j] / step[j];
        /* |v| + offset >= 0: its floor, and whether that fits int32 (floor(x) < 2^31 - 1
           exactly where x < 2^31 - 1), as numpy's path checks; NaN fails it too */
        double x = fabs(v) + offset[j];
        int fits = x < 2147483647.0;
        fits_all &= fits;
        int32_t k = (int32_t)(fits ? x : 0.0); /* truncation: the floor of x >= 0 */
        q[j] = v < 0 ? -k : k;
        used[j] |= k != 0;
        uint32_t bits;
        float magnitude = fabsf(c[j]);
        memcpy(&bits, &magnitude, 4);
        bits = j ? bits : 0;
        top = bits > top ? bits : top;
    }
    *ok &= fits_all;
    return top;
}

/* A fitted basis's coefficients to its own lattice, each round of `codec.refine.fit_basis`:
   one pass instead of numpy's dozen over binary64 temporaries and row-wise reductions. */
static PyObject *lattice_integers(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"coefficients", "steps", "rounding", "first_rounding", "ints",
                            "largest", "nonzero", NULL};
    PyObject *o_values, *o_steps, *o_ints, *o_largest, *o_nonzero, *result = NULL;
    float rounding, first_rounding;
    Arr values = {0}, steps = {0}, ints = {0}, largest = {0}, nonzero = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOffOOO:lattice_integers", names,
                                     &o_values, &o_steps, &rounding, &first_rounding, &o_ints,
                                     &o_largest, &o_nonzero))
        return NULL;
    if (get_array(o_values, &values, "coefficients", 2, T_F32, 0) < 0
        || get_array(o_steps, &steps, "steps", 1, T_F64, 0) < 0
        || get_array(o_ints, &ints, "ints", 2, T_I32, A_WRITABLE) < 0
        || get_array(o_largest, &largest, "largest", 1, T_F32, A_WRITABLE) < 0
        || get_array(o_nonzero, &nonzero, "nonzero", 1, T_BOOL, A_WRITABLE) < 0)
        goto done;
    Py_ssize_t rows = values.shape[0], cols = values.shape[1];
    if (ints.shape[0] != rows || ints.shape[1] != cols || steps.size != cols
        || largest.size != rows || nonzero.size != cols) {
        value_error("lattice_integers: ints must have the coefficients' shape, steps and "
                    "nonzero one value per column, largest one per row");
        goto done;
    }
    /* offsets in [0, 1): |v| + offset >= 0, whose truncation is its floor */
    if (!(rounding >= 0.0f && rounding < 1.0f && first_rounding >= 0.0f
          && first_rounding < 1.0f)) {
        value_error("lattice_integers: rounding and first_rounding must lie in [0, 1)");
        goto done;
    }
    /* each column's step and offset (binary64), read once; a row's coefficients and
       integers where they are not contiguous (float32, int32); each column's nonzero flag */
    Py_ssize_t column_bytes = mul_size(cols + 1, 2 * (Py_ssize_t)sizeof(double)
                                                 + (Py_ssize_t)sizeof(float)
                                                 + (Py_ssize_t)sizeof(int32_t) + 1);
    double *column = column_bytes < 0 ? NULL : malloc((size_t)column_bytes);
    if (column == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *offset = column + cols;
    float *row_values = (float *)(offset + cols);
    int32_t *row_ints = (int32_t *)(row_values + cols);
    uint8_t *used = (uint8_t *)(row_ints + cols);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < cols; j++) {
        column[j] = ld_f64(steps.data + j * steps.strides[0]);
        offset[j] = (double)(j ? rounding : first_rounding);
        used[j] = 0;
    }
    /* rows of contiguous, aligned elements (a numpy array's own): `lattice_row` */
    const int contiguous = values.strides[1] == 4 && ints.strides[1] == 4
                           && (uintptr_t)values.data % 4 == 0 && values.strides[0] % 4 == 0
                           && (uintptr_t)ints.data % 4 == 0 && ints.strides[0] % 4 == 0;
    for (Py_ssize_t i = 0; i < rows && ok; i++) {
        const char *c = values.data + i * values.strides[0];
        char *q = ints.data + i * ints.strides[0];
        if (!contiguous) /* the row gathered, its integers scattered after */
            for (Py_ssize_t j = 0; j < cols; j++)
                row_values[j] = ld_f32(c + j * values.strides[1]);
        uint32_t bits = lattice_row(contiguous ? (const float *)c : row_values,
                                    contiguous ? (int32_t *)q : row_ints, column, offset, used,
                                    cols, &ok);
        if (!contiguous)
            for (Py_ssize_t j = 0; j < cols; j++)
                st_i32(q + j * ints.strides[1], row_ints[j]);
        float top;
        memcpy(&top, &bits, 4);
        st_f32(largest.data + i * largest.strides[0], top);
    }
    for (Py_ssize_t j = 0; j < cols; j++)
        nonzero.data[j * nonzero.strides[0]] = (char)used[j];
    Py_END_ALLOW_THREADS
    free(column);
    result = PyBool_FromLong(ok);
done:
    release(&values);
    release(&steps);
    release(&ints);
    release(&largest);
    release(&nonzero);
    return result;
}

typedef struct {
    const char *matrix;
    Py_ssize_t rows, row_stride, col_stride, lo, count;
    int type;
    uint8_t *out;
    uint16_t *xrun;
    int32_t *xval;
    Py_ssize_t n, a, v;
} Symbols;

/* Bit j set where element j of the `size` (<= 64) elements of type T at `part`, col_stride
   bytes apart, is non-zero: the scan of `symbols` and `lower_levels`, which then visit only
   the set bits (most values are zero). */
#define DEFINE_NONZERO_MASK(T)                                                                 \
    ALWAYS_INLINE uint64_t nonzero_mask_##T(const char *part, Py_ssize_t size,                  \
                                            Py_ssize_t col_stride)                             \
    {                                                                                          \
        uint64_t mask = 0;                                                                     \
        for (Py_ssize_t j = 0; j < size; j++) {                                                \
            T x;                                                                               \
            memcpy(&x, part + j * col_stride, sizeof(T));                                      \
            mask |= (uint64_t)(x != 0) << j;                                                   \
        }                                                                                      \
        return mask;                                                                           \
    }
DEFINE_NONZERO_MASK(int8_t)
DEFINE_NONZERO_MASK(uint8_t)
DEFINE_NONZERO_MASK(uint16_t)

/* `nonzero_mask` of 16-bit integers, contiguous ones four at a time in a 64-bit word (the
   usual U and V integers): a lane's top bit is set where the lane is non-zero (its low 15
   bits plus 0x7FFF carry into bit 15 unless they are all zero; or the lane's own top bit),
   then the four top bits are gathered by a product in which no two partial products share a
   bit (lane k's bit 16k + 15 lands in bit 48 + k). */
ALWAYS_INLINE uint64_t nonzero_mask_int16_t(const char *part, Py_ssize_t size,
                                            Py_ssize_t col_stride)
{
    uint64_t mask = 0;
    Py_ssize_t j = 0;
    if (PY_LITTLE_ENDIAN && col_stride == 2) { /* lane k: element j + k */
        const uint64_t low = 0x7FFF7FFF7FFF7FFFull, top = 0x8000800080008000ull;
        for (; j + 4 <= size; j += 4) {
            uint64_t v;
            memcpy(&v, part + 2 * j, 8);
            uint64_t set = (((v & low) + low) | v) & top;
            mask |= (((set >> 15) * 0x0001000200040008ull) >> 48 & 15u) << j;
        }
    }
    for (; j < size; j++) {
        int16_t x;
        memcpy(&x, part + j * col_stride, 2);
        mask |= (uint64_t)(x != 0) << j;
    }
    return mask;
}
DEFINE_NONZERO_MASK(int32_t)
DEFINE_NONZERO_MASK(uint32_t)
DEFINE_NONZERO_MASK(int64_t)
DEFINE_NONZERO_MASK(uint64_t)

/* coding.band_symbols of one row of integer type T (`count` values col_stride bytes apart
   from `row`): scanned 64 columns at a time for a bit mask of its non-zeros, then only the set
   bits are visited (most values are zero); its symbols and escapes appended at z's counts
   n, a and v (kept by the caller in locals). */
#define DEFINE_SYMBOLS(NAME, T)                                                               \
    ALWAYS_INLINE void NAME##_row(Symbols *z, const char *row, Py_ssize_t col_stride,          \
                                  Py_ssize_t *n_, Py_ssize_t *a_, Py_ssize_t *v_)              \
    {                                                                                          \
        Py_ssize_t n = *n_, a = *a_, v = *v_;                                                  \
        Py_ssize_t last = -1; /* column of the previous non-zero */                            \
        for (Py_ssize_t base = 0; base < z->count; base += 64) {                               \
            Py_ssize_t size = z->count - base < 64 ? z->count - base : 64;                     \
            const char *part = row + base * col_stride;                                        \
            uint64_t mask = nonzero_mask_##T(part, size, col_stride);                          \
            while (mask) {                                                                     \
                Py_ssize_t k = TRAILING_ZEROS(mask);                                           \
                mask &= mask - 1;                                                              \
                Py_ssize_t run = base + k - last - 1;                                          \
                last = base + k;                                                               \
                T x;                                                                           \
                memcpy(&x, part + k * col_stride, sizeof(T));                                  \
                int64_t value = (int64_t)x;                                                    \
                unsigned code = run >= 15 ? 15 : (unsigned)run;                                \
                if (run >= 15)                                                                 \
                    z->xrun[a++] = (uint16_t)(run - 15);                                       \
                if (-7 <= value && value <= 7) {                                               \
                    z->out[n] = (uint8_t)((code << 4) | (unsigned)(value + 8));                \
                } else {                                                                       \
                    z->out[n] = (uint8_t)(code << 4);                                          \
                    z->xval[v++] = (int32_t)value;                                             \
                }                                                                              \
                n++;                                                                           \
            }                                                                                  \
        }                                                                                      \
        z->out[n++] = 0x08;                                                                    \
        *n_ = n, *a_ = a, *v_ = v;                                                             \
    }                                                                                          \
    ALWAYS_INLINE void NAME##_body(Symbols *z, Py_ssize_t col_stride)                          \
    {                                                                                          \
        Py_ssize_t n = 0, a = 0, v = 0;                                                        \
        for (Py_ssize_t i = 0; i < z->rows; i++)                                               \
            NAME##_row(z, z->matrix + i * z->row_stride + z->lo * col_stride, col_stride, &n,  \
                       &a, &v);                                                                \
        z->n = n, z->a = a, z->v = v;                                                          \
    }                                                                                          \
    HOT static void NAME(Symbols *z)                                                           \
    {                                                                                          \
        if (z->col_stride == sizeof(T))                                                        \
            NAME##_body(z, sizeof(T));                                                         \
        else                                                                                   \
            NAME##_body(z, z->col_stride);                                                     \
    }

DEFINE_SYMBOLS(symbols_i8, int8_t)
DEFINE_SYMBOLS(symbols_u8, uint8_t)
DEFINE_SYMBOLS(symbols_i16, int16_t)
DEFINE_SYMBOLS(symbols_u16, uint16_t)
DEFINE_SYMBOLS(symbols_i32, int32_t)
DEFINE_SYMBOLS(symbols_u32, uint32_t)
DEFINE_SYMBOLS(symbols_i64, int64_t)
DEFINE_SYMBOLS(symbols_u64, uint64_t)

#if FUSED_PRODUCT
/* set_lanes8[m]: the lanes whose bit is set in m, in order, then 0x80 (a zero from pshufb) up
   to 16 bytes;
   place8[k]: the pshufb order that moves 8 bytes to bytes k..k + 7 and zeros the others
   (both filled by the module's initialization). */
static uint8_t set_lanes8[256][16], place8[9][16];

static void fill_symbol_lanes(void)
{
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int t = 0; t < 8; t++)
            if (m >> t & 1)
                set_lanes8[m][n++] = (uint8_t)t;
        while (n < 16)
            set_lanes8[m][n++] = 0x80;
    }
    for (int k = 0; k <= 8; k++)
        for (int j = 0; j < 16; j++)
            place8[k][j] = j >= k && j < k + 8 ? (uint8_t)(j - k) : 0x80;
}

/* `symbols_i16` of rows of at most 16 contiguous values (`count`; a photo's luma group after
   the first component is 15, a chroma plane's first group too), row by row without a branch
   on the values: the 16 values narrowed to bytes (saturated: the non-zeros and the values
   outside -7..7 stay so), the non-zeros' lanes and values packed to the front by two 8-lane
   tables and a placement of the second half after the first's, the runs as the differences
   of consecutive lanes, and the 16 symbols stored at once (the bytes past the row's are
   overwritten by the next row's, or lie in the buffer's slack). A row with an escape (a
   value outside -7..7, or a run of 15: its one non-zero in lane 15) takes `symbols_i16_row`.
   Rows [0, safe) are read 32 bytes at a time from their first value (the caller has checked
   that these reads stay inside the matrix); the rest take `symbols_i16_row` too. The same
   symbols and escapes, in the same order. */
static __attribute__((target("avx2,popcnt"))) void symbols_i16_rows16(Symbols *z,
                                                                      Py_ssize_t safe)
{
    Py_ssize_t n = 0, a = 0, v = 0;
    const __m128i zero = _mm_setzero_si128(), seven = _mm_set1_epi8(7),
                  low_seven = _mm_set1_epi8(-7), eight = _mm_set1_epi8(8),
                  one = _mm_set1_epi8(1), high_nibble = _mm_set1_epi8((char)0xF0),
                  lanes = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                  before_first = _mm_setr_epi8(-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i upper_lanes = _mm_srli_si128(lanes, 8);
    const unsigned valid = (unsigned)((1u << z->count) - 1u);
    for (Py_ssize_t i = 0; i < z->rows; i++) {
        const char *row = z->matrix + i * z->row_stride + 2 * z->lo;
        if (i >= safe) {
            symbols_i16_row(z, row, 2, &n, &a, &v);
            continue;
        }
        __m128i bytes = _mm_packs_epi16(_mm_loadu_si128((const __m128i *)(const void *)row),
                                        _mm_loadu_si128((const __m128i *)(const void *)(row + 16)));
        unsigned nonzero = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, zero)) & valid;
        unsigned escape = (unsigned)_mm_movemask_epi8(_mm_or_si128(
            _mm_cmpgt_epi8(bytes, seven), _mm_cmplt_epi8(bytes, low_seven))) & valid;
        if (RARELY(escape || nonzero == 0x8000u)) {
            symbols_i16_row(z, row, 2, &n, &a, &v);
            continue;
        }
        unsigned low = nonzero & 0xFFu, high = nonzero >> 8;
        int in_low = _mm_popcnt_u32(low);
        __m128i pick_low = _mm_loadu_si128((const __m128i *)(const void *)set_lanes8[low]);
        __m128i pick_high = _mm_loadu_si128((const __m128i *)(const void *)set_lanes8[high]);
        __m128i place = _mm_loadu_si128((const __m128i *)(const void *)place8[in_low]);
        __m128i at = _mm_or_si128(_mm_shuffle_epi8(lanes, pick_low),
                                  _mm_shuffle_epi8(_mm_shuffle_epi8(upper_lanes, pick_high),
                                                   place));
        __m128i value = _mm_or_si128(
            _mm_shuffle_epi8(bytes, pick_low),
            _mm_shuffle_epi8(_mm_shuffle_epi8(_mm_srli_si128(bytes, 8), pick_high), place));
        /* run = lane - previous non-zero's lane - 1 (-1 before the first): below 15 here */
        __m128i previous = _mm_or_si128(_mm_slli_si128(at, 1), before_first);
        __m128i run = _mm_sub_epi8(_mm_sub_epi8(at, previous), one);
        __m128i symbol = _mm_or_si128(_mm_and_si128(_mm_slli_epi16(run, 4), high_nibble),
                                      _mm_add_epi8(value, eight));
        _mm_storeu_si128((__m128i *)(void *)(z->out + n), symbol);
        n += _mm_popcnt_u32(nonzero);
        z->out[n++] = 0x08;
    }
    z->n = n, z->a = a, z->v = v;
}
#endif

/* The bytes `symbols` keeps past its worst case of symbols: the slack of
   `symbols_i16_rows16`'s 16-byte stores. */
#define SYMBOL_SLACK 16

/* A new numpy array holding a copy of n items of `data`. */
static PyObject *array_copy(const void *data, Py_ssize_t n, Py_ssize_t itemsize,
                            const char *dtype)
{
    Arr a = {0};
    PyObject *array = new_array(numpy_empty, n, dtype, &a);
    if (array != NULL) {
        if (n)
            memcpy(a.data, data, (size_t)(n * itemsize));
        release(&a);
    }
    return array;
}

PyDoc_STRVAR(symbols_doc,
"symbols(matrix, lo, hi) -> (symbols, xrun, xval)\n\n"
"coding.band_symbols of matrix[:, lo:hi] (an integer matrix): run/level symbols (uint8),\n"
"row-major, end-of-row after each row; escapes of runs >= 15 (uint16) and values outside\n"
"-7..7 (int32).");

static PyObject *symbols(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"matrix", "lo", "hi", NULL};
    PyObject *o_matrix, *result = NULL, *o_out = NULL, *o_xrun = NULL, *o_xval = NULL;
    Py_ssize_t lo, hi;
    Arr matrix = {0};
    Symbols z = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onn:symbols", names, &o_matrix, &lo, &hi))
        return NULL;
    if (get_array(o_matrix, &matrix, "matrix", 2, T_INTS, 0) < 0)
        goto done;
    if (lo < 0 || hi < lo || hi > matrix.shape[1]) {
        value_error("symbols: needs 0 <= lo <= hi <= columns");
        goto done;
    }
    Py_ssize_t rows = matrix.shape[0], count = hi - lo;
    Py_ssize_t n_out = mul_size(rows, count + 1), n_esc = mul_size(rows, count);
    if (n_out < 0 || n_esc < 0 || n_esc > PY_SSIZE_T_MAX / 8) {
        PyErr_NoMemory();
        goto done;
    }
    z = (Symbols){matrix.data, rows, matrix.strides[0], matrix.strides[1], lo, count,
                  matrix.type};
    z.out = malloc((size_t)n_out + SYMBOL_SLACK);
    z.xrun = malloc(sizeof(uint16_t) * (size_t)(n_esc + 1));
    z.xval = malloc(sizeof(int32_t) * (size_t)(n_esc + 1));
    if (!z.out || !z.xrun || !z.xval) {
        PyErr_NoMemory();
        goto done;
    }
#if FUSED_PRODUCT
    /* symbols_i16_rows16 reads 32 bytes from each row's first value: rows [0, safe) whose
       reads end inside the values known to exist (up to the last row's value hi - 1; a
       strided view's rows are read across the values between them, which numpy's buffer
       holds) */
    Py_ssize_t safe = 0;
    if (encoder_level && matrix.type == T_I16 && z.col_stride == 2 && count >= 1 && count <= 16
        && z.row_stride > 0 && rows > 0) {
        Py_ssize_t end = (rows - 1) * z.row_stride + 2 * hi; /* bytes from matrix.data */
        Py_ssize_t reach = 2 * lo + 32;                       /* a row's read, from its start */
        safe = end >= reach ? (end - reach) / z.row_stride + 1 : 0;
        safe = safe < rows ? safe : rows;
    }
#endif
    Py_BEGIN_ALLOW_THREADS
    switch (matrix.type) {
    case T_I8: symbols_i8(&z); break;
    case T_U8: symbols_u8(&z); break;
    case T_I16:
#if FUSED_PRODUCT
        if (safe > 0) {
            symbols_i16_rows16(&z, safe);
            break;
        }
#endif
        symbols_i16(&z);
        break;
    case T_U16: symbols_u16(&z); break;
    case T_I32: symbols_i32(&z); break;
    case T_U32: symbols_u32(&z); break;
    case T_I64: symbols_i64(&z); break;
    default: symbols_u64(&z); break;
    }
    Py_END_ALLOW_THREADS
    if ((o_out = array_copy(z.out, z.n, 1, "uint8"))
        && (o_xrun = array_copy(z.xrun, z.a, 2, "uint16"))
        && (o_xval = array_copy(z.xval, z.v, 4, "int32")))
        result = PyTuple_Pack(3, o_out, o_xrun, o_xval);
done:
    free(z.out);
    free(z.xrun);
    free(z.xval);
    Py_XDECREF(o_out);
    Py_XDECREF(o_xrun);
    Py_XDECREF(o_xval);
    release(&matrix);
    return result;
}


/* The smallest and largest of n integers of type T, and their histogram from lo: one loop per
   type (numba's int64 view of each value: uint64 is read as int64). */
#define DEFINE_HISTOGRAM(T)                                                                   \
    HOT static void range_##T(const char *data, Py_ssize_t stride, Py_ssize_t n, int64_t *lo,  \
                              int64_t *hi)                                                     \
    {                                                                                          \
        T a, b, v;                                                                             \
        memcpy(&a, data, sizeof(T));                                                           \
        b = a;                                                                                 \
        for (Py_ssize_t k = 0; k < n; k++) {                                                   \
            memcpy(&v, data + k * stride, sizeof(T));                                          \
            a = v < a ? v : a;                                                                 \
            b = v > b ? v : b;                                                                 \
        }                                                                                      \
        *lo = (int64_t)a, *hi = (int64_t)b;                                                    \
    }                                                                                          \
    HOT static void count_##T(const char *data, Py_ssize_t stride, Py_ssize_t n, int64_t lo,   \
                              int64_t *counts)                                                 \
    {                                                                                          \
        for (Py_ssize_t k = 0; k < n; k++) {                                                   \
            T v;                                                                               \
            memcpy(&v, data + k * stride, sizeof(T));                                          \
            counts[(uint64_t)(int64_t)v - (uint64_t)lo]++;                                     \
        }                                                                                      \
    }

DEFINE_HISTOGRAM(int8_t)
DEFINE_HISTOGRAM(uint8_t)
DEFINE_HISTOGRAM(int16_t)
DEFINE_HISTOGRAM(uint16_t)
DEFINE_HISTOGRAM(int32_t)
DEFINE_HISTOGRAM(uint32_t)
DEFINE_HISTOGRAM(int64_t)

#define BY_TYPE(type, NAME, ...)                                                              \
    switch (type) {                                                                            \
    case T_I8: NAME##_int8_t(__VA_ARGS__); break;                                              \
    case T_U8: NAME##_uint8_t(__VA_ARGS__); break;                                             \
    case T_I16: NAME##_int16_t(__VA_ARGS__); break;                                            \
    case T_U16: NAME##_uint16_t(__VA_ARGS__); break;                                           \
    case T_I32: NAME##_int32_t(__VA_ARGS__); break;                                            \
    case T_U32: NAME##_uint32_t(__VA_ARGS__); break;                                           \
    default: NAME##_int64_t(__VA_ARGS__); break;                                               \
    }

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* -sum of c * log2(c / n) over the counts c of distinct values, in increasing order of value;
   *no_memory set if a buffer could not be allocated. */
static double entropy_in_range(const char *data, Py_ssize_t stride, int type, Py_ssize_t n,
                               int64_t lo, int64_t hi, Py_ssize_t slack, int *no_memory);

static double entropy_run(const char *data, Py_ssize_t stride, int type, Py_ssize_t n,
                          Py_ssize_t slack, int *no_memory)
{
    if (n == 0)
        return 0.0;
    int64_t lo, hi;
    BY_TYPE(type, range, data, stride, n, &lo, &hi)
    return entropy_in_range(data, stride, type, n, lo, hi, slack, no_memory);
}

/* `entropy_run` of n >= 1 integers whose smallest and largest are lo and hi. */
static double entropy_in_range(const char *data, Py_ssize_t stride, int type, Py_ssize_t n,
                               int64_t lo, int64_t hi, Py_ssize_t slack, int *no_memory)
{
    if (lo == 0 && hi == 0)
        return 0.0;
    double total = 0.0, size = (double)n;
    uint64_t span = (uint64_t)hi - (uint64_t)lo; /* no overflow for any int64 pair */
    if (slack < 0 || span >= 4 * (uint64_t)n + (uint64_t)slack) {
        /* A histogram would span too many bins: count by sorting a copy. */
        int64_t *ordered = malloc(sizeof(int64_t) * (size_t)n);
        if (ordered == NULL) {
            *no_memory = 1;
            return 0.0;
        }
        for (Py_ssize_t k = 0; k < n; k++)
            ordered[k] = ld_int(data + k * stride, type);
        qsort(ordered, (size_t)n, sizeof(int64_t), compare_int64);
        Py_ssize_t start = 0;
        for (Py_ssize_t k = 1; k <= n; k++) {
            if (k == n || ordered[k] != ordered[start]) {
                double c = (double)(k - start);
                total += c * log2(c / size);
                start = k;
            }
        }
        free(ordered);
        return -total;
    }
    int64_t *counts = calloc((size_t)span + 1, sizeof(int64_t));
    if (counts == NULL) {
        *no_memory = 1;
        return 0.0;
    }
    BY_TYPE(type, count, data, stride, n, lo, counts)
    for (uint64_t b = 0; b <= span; b++) {
        if (counts[b]) {
            double c = (double)counts[b];
            total += c * log2(c / size);
        }
    }
    free(counts);
    return -total;
}

PyDoc_STRVAR(entropy_bits_doc,
"entropy_bits(values, slack) -> float\n\n"
"codec.quantize.entropy_bits of a 1-D integer array (any stride): order-0 entropy in bits,\n"
"from one histogram pass; by sorting a copy when the histogram would span 4 * size + slack\n"
"bins or more.");

static PyObject *entropy_bits(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"values", "slack", NULL};
    PyObject *o_values;
    Py_ssize_t slack;
    Arr values = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On:entropy_bits", names, &o_values, &slack))
        return NULL;
    if (get_array(o_values, &values, "values", 1, T_INTS, 0) < 0)
        return NULL;
    int no_memory = 0;
    double bits;
    Py_BEGIN_ALLOW_THREADS
    bits = entropy_run(values.data, values.strides[0], values.type, values.size, slack,
                       &no_memory);
    Py_END_ALLOW_THREADS
    release(&values);
    if (no_memory)
        return PyErr_NoMemory();
    return PyFloat_FromDouble(bits);
}

PyDoc_STRVAR(column_entropy_bits_doc,
"column_entropy_bits(matrix, slack) -> list of float\n\n"
"entropy_bits(matrix[:, j], slack) of every column j of a 2-D integer array (any strides),\n"
"each the same double as that call gives.");

static PyObject *column_entropy_bits(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"matrix", "slack", NULL};
    PyObject *o_matrix;
    Py_ssize_t slack;
    Arr m = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On:column_entropy_bits", names, &o_matrix,
                                     &slack))
        return NULL;
    if (get_array(o_matrix, &m, "matrix", 2, T_INTS, 0) < 0)
        return NULL;
    Py_ssize_t rows = m.shape[0], cols = m.shape[1];
    double *bits = malloc(sizeof(double) * (size_t)(cols ? cols : 1));
    if (bits == NULL) {
        release(&m);
        return PyErr_NoMemory();
    }
    int no_memory = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < cols && !no_memory; j++)
        bits[j] = entropy_run(m.data + j * m.strides[1], m.strides[0], m.type, rows, slack,
                              &no_memory);
    Py_END_ALLOW_THREADS
    release(&m);
    PyObject *out = no_memory ? PyErr_NoMemory() : PyList_New(cols);
    for (Py_ssize_t j = 0; out != NULL && j < cols; j++) {
        PyObject *value = PyFloat_FromDouble(bits[j]);
        if (value == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, j, value);
    }
    free(bits);
    return out;
}

/* r = residuals of the grids g (count, gh, gw) under a predictor of codec.coding (0 none,
   1 horizontal, 2 vertical, 3 planar), and their smallest and largest value (n >= 1). A loop
   per predictor, each grid row's first sample apart, so that the loops along a row have no
   branch. Two copies (`predict_grids` on int64 in wrapping arithmetic as numpy's int64, and
   `predict_grids32` on int32 for grids of 8- and 16-bit integers, whose residuals, sums and
   differences of at most four of them, are exact in int32: the same values in half the
   memory). U is the unsigned type of T: its wrapping differences. */
#define DEFINE_PREDICT_GRIDS(NAME, T, U)                                                      \
    HOT static void NAME(const T *RESTRICT g, T *RESTRICT r, Py_ssize_t count, Py_ssize_t gh,  \
                         Py_ssize_t gw, int predictor, int64_t *lo, int64_t *hi)               \
    {                                                                                          \
        int horizontal = predictor == 1 || predictor == 3;                                     \
        int vertical = predictor == 2 || predictor == 3;                                       \
        for (Py_ssize_t c = 0; c < count; c++) {                                               \
            const T *RESTRICT grid = g + c * gh * gw;                                          \
            T *RESTRICT res = r + c * gh * gw;                                                 \
            for (Py_ssize_t y = 0; y < gh; y++) {                                              \
                const U *RESTRICT at = (const U *)grid + y * gw;                               \
                T *RESTRICT out = res + y * gw;                                                \
                if (vertical && y > 0) {                                                       \
                    const U *RESTRICT up = at - gw;                                            \
                    out[0] = (T)(U)(at[0] - up[0]);                                            \
                    if (horizontal)                                                            \
                        for (Py_ssize_t x = 1; x < gw; x++)                                    \
                            out[x] = (T)(U)(at[x] - at[x - 1] - up[x] + up[x - 1]);            \
                    else                                                                       \
                        for (Py_ssize_t x = 1; x < gw; x++)                                    \
                            out[x] = (T)(U)(at[x] - up[x]);                                    \
                } else {                                                                       \
                    out[0] = (T)at[0];                                                         \
                    if (horizontal)                                                            \
                        for (Py_ssize_t x = 1; x < gw; x++)                                    \
                            out[x] = (T)(U)(at[x] - at[x - 1]);                                \
                    else                                                                       \
                        for (Py_ssize_t x = 1; x < gw; x++)                                    \
                            out[x] = (T)at[x];                                                 \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        T a = r[0], b = r[0];                                                                  \
        Py_ssize_t n = count * gh * gw;                                                        \
        for (Py_ssize_t i = 1; i < n; i++) {                                                   \
            a = r[i] < a ? r[i] : a;                                                           \
            b = r[i] > b ? r[i] : b;                                                           \
        }                                                                                      \
        *lo = (int64_t)a, *hi = (int64_t)b;                                                    \
    }

DEFINE_PREDICT_GRIDS(predict_grids, int64_t, uint64_t)
DEFINE_PREDICT_GRIDS(predict_grids32, int32_t, uint32_t)

/* The integer grids (count, gh, gw), any strides, in C order (n of them): as int64, or
   (`load_grids32`, for 8- and 16-bit grids only) as int32. */
#define DEFINE_LOAD_GRIDS(NAME, T)                                                            \
    static void NAME(const Arr *a, T *g)                                                       \
    {                                                                                          \
        Py_ssize_t k = 0;                                                                      \
        for (Py_ssize_t c = 0; c < a->shape[0]; c++)                                           \
            for (Py_ssize_t y = 0; y < a->shape[1]; y++)                                       \
                for (Py_ssize_t x = 0; x < a->shape[2]; x++)                                   \
                    g[k++] = (T)ld_int(a->data + c * a->strides[0] + y * a->strides[1]         \
                                       + x * a->strides[2], a->type);                          \
    }

DEFINE_LOAD_GRIDS(load_grids, int64_t)
DEFINE_LOAD_GRIDS(load_grids32, int32_t)

/* Grids whose predictions run in int32 (`predict_grids32`): 8- and 16-bit integers. */
#define T_NARROW_GRIDS (T_I8 | T_U8 | T_I16 | T_U16)

/* The residuals of predictor p of the grids in a (count, gh, gw) into r, from g, which holds
   them as `load_grids` or (narrow: T_NARROW_GRIDS) `load_grids32` does; their range. */
static void predict_any(const Arr *a, int narrow, const void *g, void *r, int p, int64_t *lo,
                        int64_t *hi)
{
    if (narrow)
        predict_grids32((const int32_t *)g, (int32_t *)r, a->shape[0], a->shape[1],
                        a->shape[2], p, lo, hi);
    else
        predict_grids((const int64_t *)g, (int64_t *)r, a->shape[0], a->shape[1], a->shape[2],
                      p, lo, hi);
}

PyDoc_STRVAR(prediction_bits_doc,
"prediction_bits(grids, slack) -> list of (bits, itemsize)\n\n"
"For each predictor of codec.coding (none, horizontal, vertical, planar), of integer grids\n"
"(count, gh, gw) (any strides): entropy_bits of its residuals (the same double) and the\n"
"itemsize codec.coding.narrow would give them (1, 2 or 4; 0 if they do not fit 32 bits).");

static PyObject *prediction_bits(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"grids", "slack", NULL};
    PyObject *o_grids;
    Py_ssize_t slack;
    Arr a = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On:prediction_bits", names, &o_grids,
                                     &slack))
        return NULL;
    if (get_array(o_grids, &a, "grids", 3, T_INTS, 0) < 0)
        return NULL;
    Py_ssize_t n = a.size;
    const int narrow = (a.type & T_NARROW_GRIDS) != 0;
    const size_t unit = narrow ? sizeof(int32_t) : sizeof(int64_t);
    char *g = malloc(unit * (size_t)(2 * n + 1));
    if (g == NULL) {
        release(&a);
        return PyErr_NoMemory();
    }
    char *r = g + unit * (size_t)n;
    double bits[4];
    int sizes[4], no_memory = 0;
    Py_BEGIN_ALLOW_THREADS
    if (narrow)
        load_grids32(&a, (int32_t *)g);
    else
        load_grids(&a, (int64_t *)g);
    for (int p = 0; p < 4 && !no_memory; p++) {
        int64_t lo = 0, hi = 0;
        if (n > 0)
            predict_any(&a, narrow, g, r, p, &lo, &hi);
        sizes[p] = (lo >= INT8_MIN && hi <= INT8_MAX) ? 1
                   : (lo >= INT16_MIN && hi <= INT16_MAX) ? 2
                   : (lo >= INT32_MIN && hi <= INT32_MAX) ? 4 : 0;
        /* the same values in either width: the same histogram and sum */
        bits[p] = n > 0 ? entropy_in_range(r, (Py_ssize_t)unit, narrow ? T_I32 : T_I64, n, lo,
                                           hi, slack, &no_memory) : 0.0;
    }
    Py_END_ALLOW_THREADS
    free(g);
    release(&a);
    if (no_memory)
        return PyErr_NoMemory();
    return Py_BuildValue("[(di)(di)(di)(di)]", bits[0], sizes[0], bits[1], sizes[1], bits[2],
                         sizes[2], bits[3], sizes[3]);
}

/* r (n values that fit, of type T) into 1-, 2- or 4-byte integers at out: a loop per width. */
#define DEFINE_NARROW_INTO(NAME, T)                                                           \
    HOT static void NAME(const T *RESTRICT r, Py_ssize_t n, int itemsize, char *RESTRICT out)  \
    {                                                                                          \
        if (itemsize == 1)                                                                     \
            for (Py_ssize_t i = 0; i < n; i++)                                                 \
                ((int8_t *)out)[i] = (int8_t)r[i];                                             \
        else if (itemsize == 2)                                                                \
            for (Py_ssize_t i = 0; i < n; i++)                                                 \
                ((int16_t *)out)[i] = (int16_t)r[i];                                           \
        else                                                                                   \
            for (Py_ssize_t i = 0; i < n; i++)                                                 \
                ((int32_t *)out)[i] = (int32_t)r[i];                                           \
    }

DEFINE_NARROW_INTO(narrow_into, int64_t)
DEFINE_NARROW_INTO(narrow_into32, int32_t)

PyDoc_STRVAR(predicted_doc,
"predicted(grids, predictor, itemsize) -> ndarray\n\n"
"codec.coding.predict(grids, predictor).astype(f\"i{itemsize}\").ravel(): the residuals of\n"
"integer grids (count, gh, gw) (any strides) under a predictor (0 none, 1 horizontal,\n"
"2 vertical, 3 planar), in wrapping 64-bit arithmetic, as int8, int16 or int32 (itemsize 1,\n"
"2 or 4: prediction_bits' for that predictor; ValueError if a residual does not fit).");

static PyObject *predicted(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"grids", "predictor", "itemsize", NULL};
    PyObject *o_grids, *result = NULL;
    int predictor, itemsize;
    Arr a = {0}, out = {0};
    char *g = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oii:predicted", names, &o_grids,
                                     &predictor, &itemsize))
        return NULL;
    if (predictor < 0 || predictor > 3 || !(itemsize == 1 || itemsize == 2 || itemsize == 4)) {
        value_error("predicted: predictor 0..3 and itemsize 1, 2 or 4");
        return NULL;
    }
    if (get_array(o_grids, &a, "grids", 3, T_INTS, 0) < 0)
        return NULL;
    Py_ssize_t n = a.size;
    const int narrow = (a.type & T_NARROW_GRIDS) != 0;
    const size_t unit = narrow ? sizeof(int32_t) : sizeof(int64_t);
    g = malloc(unit * (size_t)(2 * n + 1));
    if (g == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    char *r = g + unit * (size_t)n;
    int64_t lo = 0, hi = 0;
    /* without the GIL, as prediction_bits: a large plane's first column of U is predicted
       in a pool thread while the calling thread joins and packs the other blocks */
    Py_BEGIN_ALLOW_THREADS
    if (narrow)
        load_grids32(&a, (int32_t *)g);
    else
        load_grids(&a, (int64_t *)g);
    if (n > 0)
        predict_any(&a, narrow, g, r, predictor, &lo, &hi);
    Py_END_ALLOW_THREADS
    int64_t least = itemsize == 1 ? INT8_MIN : itemsize == 2 ? INT16_MIN : INT32_MIN;
    int64_t most = itemsize == 1 ? INT8_MAX : itemsize == 2 ? INT16_MAX : INT32_MAX;
    if (lo < least || hi > most) {
        value_error("predicted: a residual does not fit the item size");
        goto done;
    }
    PyObject *array = new_array(numpy_empty, n, itemsize == 1 ? "int8" : itemsize == 2
                                ? "int16" : "int32", &out);
    if (array == NULL)
        goto done;
    int expected = itemsize == 1 ? T_I8 : itemsize == 2 ? T_I16 : T_I32;
    if (out.size != n || out.type != expected) { /* numpy.empty's: never */
        Py_DECREF(array);
        value_error("predicted: unexpected result array");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (narrow)
        narrow_into32((const int32_t *)r, n, itemsize, out.data);
    else
        narrow_into((const int64_t *)r, n, itemsize, out.data);
    Py_END_ALLOW_THREADS
    result = array;
done:
    free(g);
    release(&a);
    release(&out);
    return result;
}

/* ------------------------------------------------------------------------ decoding: checks */

/* Whether all n float32 at p are finite: an exponent field of all ones is an infinity or a
   NaN. Integer compares, which vectorize, and no early exit (the usual answer is yes). */
HOT static int finite_run(const char *RESTRICT p, Py_ssize_t n)
{
    uint32_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, p + 4 * i, 4);
        bad |= (bits & 0x7F800000u) == 0x7F800000u;
    }
    return bad == 0;
}

PyDoc_STRVAR(all_finite_doc,
"all_finite(a) -> bool\n\n"
"Whether every element of a (float32, C-contiguous, any shape) is finite: the verdict of\n"
"np.isfinite(a.min()) and np.isfinite(a.max()) in one pass.");

static PyObject *all_finite(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (view.itemsize != 4 || format_type(view.format, view.itemsize) != T_F32) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "all_finite: a must be float32");
        return NULL;
    }
    int ok;
    Py_ssize_t n = view.len / 4;
    Py_BEGIN_ALLOW_THREADS
    ok = finite_run((const char *)view.buf, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

/* ------------------------------------------------------------------------ memory pages */

PyDoc_STRVAR(base_pages_doc,
"base_pages(a) -> bool\n\n"
"Asks the system to back the whole pages inside a (a writable C-contiguous buffer) with pages\n"
"of its base size, not transparent huge pages (madvise MADV_NOHUGEPAGE, Linux): numpy asks\n"
"for huge pages for every array of 4 MiB or more (runtime.pages.base_page_array says why\n"
"an image's memory should not have them). The pages at a's edges, which it may share with\n"
"other memory, are left as they are. False where the system has no such advice or refused it.");

static PyObject *base_pages(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    int advised = 0;
#if defined(__linux__) && defined(MADV_NOHUGEPAGE)
    const long size = sysconf(_SC_PAGESIZE);
    if (size > 0) {
        const uintptr_t page = (uintptr_t)size, at = (uintptr_t)view.buf;
        const uintptr_t first = (at + page - 1) / page * page;
        const uintptr_t end = (at + (uintptr_t)view.len) / page * page;
        advised = end <= first || madvise((void *)first, end - first, MADV_NOHUGEPAGE) == 0;
    }
#endif
    PyBuffer_Release(&view);
    return PyBool_FromLong(advised);
}

/* ------------------------------------------------------------------------ exact weights
   (codec.exact.weights, spec §5.1) */

/* W_k = floor(2^F y_k + 1/2), y_k = fl64(fl64(step * step) / sigma_k), into w[0..n), and their
   sum: 0, or -1 wherever the Python rule decides instead (a 2^F y_k not finite, negative or
   above 2^53, or a sum beyond 64 bits): the same IEEE operations one value at a time. */
static int exact_weights_run(const char *sigma, Py_ssize_t stride, int is_double,
                             Py_ssize_t n, double step, int shift, double *w, uint64_t *total)
{
    const double square = step * step;
    uint64_t sum = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        double value;
        if (is_double) {
            memcpy(&value, sigma + k * stride, sizeof value);
        } else {
            float single;
            memcpy(&single, sigma + k * stride, sizeof single);
            value = single;
        }
        double scaled = ldexp(square / value, shift); /* exact: a power of two */
        if (!(scaled >= 0.0 && scaled <= 9007199254740992.0)) /* also NaN */
            return -1;
        double whole = floor(scaled);
        double weight = whole + (scaled - whole >= 0.5 ? 1.0 : 0.0); /* floor(x + 1/2) */
        uint64_t integer = (uint64_t)weight;
        if (integer > UINT64_MAX - sum)
            return -1;
        sum += integer;
        w[k] = weight;
    }
    *total = sum;
    return 0;
}

PyDoc_STRVAR(exact_weights_doc,
"exact_weights(sigma, step, shift) -> (weights, sum) or None\n\n"
"codec.exact.weights of a plane's singular values (float32 or float64, 1-D): the weights W_k\n"
"as float64 and their sum as an int; None wherever a W_k is not finite, is negative or\n"
"exceeds 2^53, or the sum exceeds 64 bits. The Python rule then decides: it raises where a W_k\n"
"is not finite or exceeds 2^53 and computes the weights otherwise.");

static PyObject *exact_weights(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"sigma", "step", "shift", NULL};
    PyObject *o_sigma, *o_weights = NULL, *result = NULL;
    double step;
    Py_ssize_t shift;
    Arr sigma = {0}, weights = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Odn:exact_weights", names, &o_sigma,
                                     &step, &shift))
        return NULL;
    if (get_array(o_sigma, &sigma, "sigma", 1, T_F32 | T_F64, 0) < 0)
        goto done;
    if (shift < -4096 || shift > 4096) { /* beyond any finite 2^F y_k's exponent range */
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (!(o_weights = new_array(numpy_empty, sigma.size, "float64", &weights)))
        goto done;
    uint64_t total = 0;
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = exact_weights_run(sigma.data, sigma.strides[0], sigma.type == T_F64, sigma.size,
                              step, (int)shift, (double *)weights.data, &total);
    Py_END_ALLOW_THREADS
    release(&weights);
    result = error ? Py_NewRef(Py_None)
                   : Py_BuildValue("(OK)", o_weights, (unsigned long long)total);
done:
    release(&sigma);
    release(&weights);
    Py_XDECREF(o_weights);
    return result;
}

/* ------------------------------------------------------------------------ rate-distortion
   optimised quantization (codec.quantize.lower_levels) */

/* The run/level symbol byte of a run and a value, as `symbols` writes it. */
ALWAYS_INLINE unsigned rdoq_code(Py_ssize_t run, int64_t value)
{
    unsigned code = run >= 15 ? 15u : (unsigned)run;
    return (code << 4) | ((-7 <= value && value <= 7) ? (unsigned)(value + 8) : 0u);
}

typedef struct {
    char *ints;
    const char *values;
    Py_ssize_t rows, i_row, i_col, v_row, v_col, lo, count;
    int type;
    float inv_step;
    double lam;
    const double *bits; /* 256 */
    double *cost;       /* count, zeroed */
    Py_ssize_t *col;    /* scratch of count: the row's non-zero columns ... */
    int64_t *level;     /* ... and their levels, as they were before this row's decisions */
} Lower;

/* The decision on one non-zero level k of a row (the row's levels as they were: col, level,
   n of them): its lowered level, or the level itself when lowering does not pay. */
ALWAYS_INLINE int64_t lower_one(const Lower *z, const char *vrow, Py_ssize_t k, Py_ssize_t n)
{
    const double *bits = z->bits;
    const Py_ssize_t *col = z->col;
    const int64_t *level = z->level;
    int64_t v = level[k], lower = v - (v < 0 ? -1 : 1);
    Py_ssize_t run = col[k] - (k ? col[k - 1] : -1) - 1;
    unsigned code = rdoq_code(run, v);
    double saved;
    if (lower != 0) {
        saved = bits[code] - bits[rdoq_code(run, lower)];
    } else if (k + 1 < n) {
        Py_ssize_t next_run = col[k + 1] - col[k] - 1;
        double gain_next = bits[rdoq_code(next_run, level[k + 1])]
                           - bits[rdoq_code(next_run + run + 1, level[k + 1])];
        saved = bits[code] + gain_next;
    } else {
        saved = bits[code];
    }
    float x = fabsf(ld_f32(vrow + col[k] * z->v_col)) * z->inv_step;
    double cost = 2.0 * ((double)x - (double)(v < 0 ? -v : v)) + 1.0;
    if (!(cost < z->lam * saved))
        return v;
    z->cost[col[k]] += cost;
    return lower;
}

/* numpy's lower_levels for an integer type T, row by row: a row's non-zeros are gathered
   (64 columns at a time, by a bit mask, as `symbols` does), then each is decided on the
   gathered levels, so writing the lowered ones at once changes nothing. */
#define DEFINE_LOWER(NAME, T)                                                                  \
    ALWAYS_INLINE Py_ssize_t NAME##_body(const Lower *z, Py_ssize_t col_stride)                \
    {                                                                                          \
        Py_ssize_t changed = 0;                                                                \
        for (Py_ssize_t i = 0; i < z->rows; i++) {                                             \
            char *row = z->ints + i * z->i_row + z->lo * col_stride;                           \
            const char *vrow = z->values + i * z->v_row + z->lo * z->v_col;                    \
            Py_ssize_t n = 0;                                                                  \
            for (Py_ssize_t base = 0; base < z->count; base += 64) {                           \
                Py_ssize_t size = z->count - base < 64 ? z->count - base : 64;                 \
                const char *part = row + base * col_stride;                                    \
                uint64_t mask = nonzero_mask_##T(part, size, col_stride);                      \
                while (mask) {                                                                 \
                    Py_ssize_t k = TRAILING_ZEROS(mask);                                       \
                    mask &= mask - 1;                                                          \
                    T x;                                                                       \
                    memcpy(&x, part + k * col_stride, sizeof(T));                              \
                    z->col[n] = base + k;                                                      \
                    z->level[n++] = (int64_t)x;                                                \
                }                                                                              \
            }                                                                                  \
            for (Py_ssize_t k = 0; k < n; k++) {                                               \
                int64_t lowered = lower_one(z, vrow, k, n);                                    \
                if (lowered != z->level[k]) {                                                  \
                    T x = (T)lowered;                                                          \
                    memcpy(row + z->col[k] * col_stride, &x, sizeof(T));                       \
                    changed++;                                                                 \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        return changed;                                                                        \
    }                                                                                          \
    HOT static Py_ssize_t NAME(const Lower *z)                                                 \
    {                                                                                          \
        return z->i_col == sizeof(T) ? NAME##_body(z, sizeof(T)) : NAME##_body(z, z->i_col);   \
    }

DEFINE_LOWER(lower_i8, int8_t)
DEFINE_LOWER(lower_i16, int16_t)
DEFINE_LOWER(lower_i32, int32_t)
DEFINE_LOWER(lower_i64, int64_t)

PyDoc_STRVAR(lower_levels_doc,
"lower_levels(ints, values, inv_step, lo, hi, bits, lam, cost) -> int\n\n"
"codec.quantize.lower_levels: in columns lo:hi of ints (rows, cols; any signed type), lower\n"
"|level| by one where 2 (|values| inv_step - |level|) + 1 < lam * bits saved (bits: 256\n"
"float64 per symbol byte), every decision on the levels as they were; cost (hi - lo float64,\n"
"zeroed by the caller) += the added squared error in steps per column. Returns the count.");

static PyObject *lower_levels(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"ints", "values", "inv_step", "lo", "hi", "bits", "lam", "cost",
                            NULL};
    PyObject *o_ints, *o_values, *o_bits, *o_cost, *result = NULL;
    float inv_step;
    double lam;
    Py_ssize_t lo, hi, changed = 0;
    Arr ints = {0}, values = {0}, bits = {0}, cost = {0};
    void *scratch = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOfnnOdO:lower_levels", names, &o_ints,
                                     &o_values, &inv_step, &lo, &hi, &o_bits, &lam, &o_cost))
        return NULL;
    if (get_array(o_ints, &ints, "ints", 2, T_SIGNED, A_WRITABLE) < 0
        || get_array(o_values, &values, "values", 2, T_F32, 0) < 0
        || get_array(o_bits, &bits, "bits", 1, T_F64, A_CONTIGUOUS) < 0
        || get_array(o_cost, &cost, "cost", 1, T_F64, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    if (values.shape[0] != ints.shape[0] || values.shape[1] != ints.shape[1]
        || lo < 0 || hi < lo || hi > ints.shape[1] || bits.size != 256
        || cost.size != hi - lo) {
        value_error("lower_levels: values must have ints' shape, 0 <= lo <= hi <= columns, "
                    "256 bits and hi - lo costs");
        goto done;
    }
    Py_ssize_t count = hi - lo;
    scratch = malloc((sizeof(Py_ssize_t) + sizeof(int64_t)) * (size_t)(count + 1));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Lower z = {ints.data, values.data, ints.shape[0], ints.strides[0], ints.strides[1],
               values.strides[0], values.strides[1], lo, count, ints.type, inv_step, lam,
               (const double *)bits.data, (double *)cost.data, (Py_ssize_t *)scratch,
               (int64_t *)((Py_ssize_t *)scratch + count + 1)};
    Py_BEGIN_ALLOW_THREADS
    switch (ints.type) {
    case T_I8: changed = lower_i8(&z); break;
    case T_I16: changed = lower_i16(&z); break;
    case T_I32: changed = lower_i32(&z); break;
    default: changed = lower_i64(&z); break;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(changed);
done:
    free(scratch);
    release(&ints);
    release(&values);
    release(&bits);
    release(&cost);
    return result;
}

/* ------------------------------------------------------------------------ adaptive quantization
   Format version 6 (spec/svdi.md §5.5): an adapted plane's row multipliers M (the map) and the
   left factor scaled by them for exact_product. The map's integer sums and comparisons are
   here; its binary64 constants (the thresholds and the mean term's R_p, a fixed sequence of
   IEEE operations) come from codec.aq, so that one place computes them. */

#define AQ_MAX_COMPONENTS 16
static const int32_t aq_classes[7] = {10, 11, 13, 16, 19, 23, 26};

/* The map in binary64, row after row of the grid, in loops over x the compiler vectorizes:
   every value is an integer below 2^53 (spec 5.5), so binary64 holds the integer rule's sums
   exactly, and so is min(|a - b|, 32767) of two float32 values: a difference below 32767 in
   magnitude is exact in binary64 (Sterbenz, or both below 2^53), and one at or above it
   rounds to at least 32767. No float is converted to an integer type: any value is defined. */
ALWAYS_INLINE double aq_clamped(double d)
{
    d = fabs(d);
    return d < 32767.0 ? d : 32767.0;
}

/* D_i's sum of the 8 neighbours' clamped squared differences, from three rows of patch means
   padded by one repeated value at each end (up, row, down: x - 1 .. x + 1 at x .. x + 2). */
HOT static void aq_mean_row(const double *RESTRICT up, const double *RESTRICT row,
                            const double *RESTRICT down, Py_ssize_t gw, double weight,
                            double *RESTRICT out)
{
    for (Py_ssize_t x = 0; x < gw; x++) {
        const double a0 = row[x + 1];
        double d, sum;
        d = aq_clamped(up[x] - a0), sum = d * d;
        d = aq_clamped(up[x + 1] - a0), sum += d * d;
        d = aq_clamped(up[x + 2] - a0), sum += d * d;
        d = aq_clamped(row[x] - a0), sum += d * d;
        d = aq_clamped(row[x + 2] - a0), sum += d * d;
        d = aq_clamped(down[x] - a0), sum += d * d;
        d = aq_clamped(down[x + 1] - a0), sum += d * d;
        d = aq_clamped(down[x + 2] - a0), sum += d * d;
        out[x] = sum * weight; /* the sum exact (< 2^34), one rounding */
    }
}

/* A grid row's classes: E = max(D, T) (T from the row above's energies, padded as above;
   none in row 0), c = #{j : E >= t_j}. */
HOT static void aq_class_row(const double *RESTRICT mean, const double *RESTRICT previous,
                             Py_ssize_t gw, const double *t, int32_t *RESTRICT cls)
{
    for (Py_ssize_t x = 0; x < gw; x++) {
        double e = mean[x];
        if (previous != NULL) {
            const double above = previous[x] + previous[x + 1] + previous[x + 2]; /* < 2^53 */
            e = above > e ? above : e;
        }
        cls[x] = (e >= t[0]) + (e >= t[1]) + (e >= t[2]) + (e >= t[3]) + (e >= t[4])
                 + (e >= t[5]);
    }
}

/* The thresholds t_j from a limits array (6 binary64, checked by the caller). */
static void aq_thresholds(const Arr *limits, double t[6])
{
    for (int j = 0; j < 6; j++)
        t[j] = ld_f64(limits->data + j * limits->strides[0]);
}

/* The map's work rows (aq_map, aq_encoder_map), in one block: the patch means, each grid row
   padded by one repeated value at each end, with a row above and one below
   ((gh + 2) x (gw + 2)); two rows of energies, padded (2 x (gw + 2)); a row's mean terms (gw);
   its classes (gw int32, in a row of doubles). */
typedef struct {
    double *block, *mu, *previous, *current, *mean;
    int32_t *cls;
    Py_ssize_t padded;
} AqRows;

/* The rows for a grid of gh x gw (gw >= 1): 0, or -1 with MemoryError set. */
static int aq_rows(AqRows *w, Py_ssize_t gh, Py_ssize_t gw)
{
    Py_ssize_t padded = gw + 2, n = mul_size(gh + 4, padded);
    n = n < 0 || n > PY_SSIZE_T_MAX - 2 * gw ? -1 : n + 2 * gw;
    if (n < 0 || n > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double)
        || !(w->block = PyMem_Malloc((size_t)n * sizeof(double)))) {
        PyErr_NoMemory();
        return -1;
    }
    w->padded = padded;
    w->mu = w->block;
    w->previous = w->mu + (gh + 2) * padded;
    w->current = w->previous + padded;
    w->mean = w->current + padded;
    w->cls = (int32_t *)(w->mean + gw);
    return 0;
}

/* A padded row's ends: its first and last values repeated. */
ALWAYS_INLINE void aq_pad(double *row, Py_ssize_t gw)
{
    row[0] = row[1];
    row[gw + 1] = row[gw];
}

/* A grid row's energies done (w->current, values at 1..gw): padded, they become the row
   above's (w->previous), and the other row is free for the next. */
ALWAYS_INLINE void aq_row_done(AqRows *w, Py_ssize_t gw)
{
    double *row = w->current;
    aq_pad(row, gw);
    w->current = w->previous;
    w->previous = row;
}

/* |v|'s integer at an adapted row's step, as `encoder.aq.adapted_integers` makes it: |v| times
   the inverse step plus the offset in float32 (both >= 0), truncated (its floor); 0, and *ok
   cleared, where that is NaN or does not fit int32 (numpy's quantizer raises there). */
ALWAYS_INLINE double aq_level(float v, float inverse, float offset, int *ok)
{
    float scaled = fabsf(v) * inverse;
    scaled = scaled + offset;
    const int fits = (double)scaled < 2147483647.0;
    *ok &= fits;
    return (double)(int32_t)(fits ? scaled : 0.0f);
}

PyDoc_STRVAR(aq_encoder_map_doc,
"aq_encoder_map(values, table, offsets, grid_width, limits, mean_weight, out) -> bool\n\n"
"encoder.aq.encoder_map into out (int64, C-contiguous, m): values (m, K) float32 coefficients\n"
"of components 0..K-1 (1 <= K <= 16, any strides) of a patch grid of grid_width columns (m a\n"
"multiple), quantized grid row by grid row as the map of that row says, as\n"
"encoder.aq.adapted_integers does: |v| * table[class][k] + offsets[k] in float32, its\n"
"truncation (table (7, K) float32: each class's inverse steps; offsets (K,) float32); the\n"
"map from their integers by spec 5.5's rule (limits (6,) float64 the thresholds, mean_weight\n"
"R_p), the patch means from column 0 at the unit class. False (out then undefined) where a\n"
"quantized value is NaN or does not fit int32.");

/* The encoder's side of the map: codec.aq's rule (`aq_mean_row`, `aq_class_row`) on the
   integers the encoder quantizes as it goes, each grid row at the classes the rows above give
   it (encoder.aq.encoder_map, a Python loop over the grid rows on the numpy path). */
static PyObject *aq_encoder_map(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"values", "table", "offsets", "grid_width", "limits",
                            "mean_weight", "out", NULL};
    PyObject *o_values, *o_table, *o_offsets, *o_limits, *o_out, *result = NULL;
    Py_ssize_t gw;
    double weight;
    Arr values = {0}, table = {0}, offsets = {0}, limits = {0}, out = {0};
    AqRows w = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOnOdO:aq_encoder_map", names, &o_values,
                                     &o_table, &o_offsets, &gw, &o_limits, &weight, &o_out))
        return NULL;
    if (get_array(o_values, &values, "values", 2, T_F32, 0) < 0
        || get_array(o_table, &table, "table", 2, T_F32, 0) < 0
        || get_array(o_offsets, &offsets, "offsets", 1, T_F32, 0) < 0
        || get_array(o_limits, &limits, "limits", 1, T_F64, 0) < 0
        || get_array(o_out, &out, "out", 1, T_I64, A_WRITABLE | A_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t m = out.size, kk = values.shape[1];
    if (gw < 1 || m % gw != 0 || values.shape[0] != m || kk < 1 || kk > AQ_MAX_COMPONENTS
        || table.shape[0] != 7 || table.shape[1] != kk || offsets.size != kk
        || limits.size != 6) {
        value_error("aq_encoder_map: needs values (m, K) with 1 <= K <= 16 and m a multiple "
                    "of grid_width >= 1, table (7, K), offsets (K,), limits (6,), out (m,)");
        goto done;
    }
    Py_ssize_t gh = m / gw;
    double t[6];
    aq_thresholds(&limits, t);
    float steps[7][AQ_MAX_COMPONENTS], offset[AQ_MAX_COMPONENTS];
    int valid = 1; /* entries >= 0 (NaN fails): a truncated value is then a floor, >= 0 */
    for (Py_ssize_t k = 0; k < kk; k++) {
        offset[k] = ld_f32(offsets.data + k * offsets.strides[0]);
        valid &= offset[k] >= 0.0f && offset[k] < 1.0f;
        for (int c = 0; c < 7; c++) {
            steps[c][k] = ld_f32(table.data + c * table.strides[0] + k * table.strides[1]);
            valid &= steps[c][k] >= 0.0f;
        }
    }
    if (!valid) {
        value_error("aq_encoder_map: table entries must be >= 0 and offsets in [0, 1)");
        goto done;
    }
    if (m == 0) {
        result = Py_NewRef(Py_True);
        goto done;
    }
    if (aq_rows(&w, gh, gw) < 0)
        goto done;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    double *mu = w.mu;
    const Py_ssize_t padded = w.padded, rs = values.strides[0], cs = values.strides[1];
    const int unit = 3; /* M = 16, aq_classes[3]: the patch means' class */
    for (Py_ssize_t y = 0; y < gh; y++) { /* the signed patch-mean integers, padded */
        double *row = mu + (y + 1) * padded;
        const char *src = values.data + y * gw * rs;
        for (Py_ssize_t x = 0; x < gw; x++) {
            const float v = ld_f32(src + x * rs);
            const double a = aq_level(v, steps[unit][0], offset[0], &ok);
            row[x + 1] = signbit(v) ? -a : a;
        }
        aq_pad(row, gw);
    }
    memcpy(mu + (gh + 1) * padded, mu + gh * padded, (size_t)padded * sizeof(double));
    memcpy(mu, mu + padded, (size_t)padded * sizeof(double));
    for (Py_ssize_t y = 0; y < gh; y++) {
        aq_mean_row(mu + y * padded, mu + (y + 1) * padded, mu + (y + 2) * padded, gw, weight,
                    w.mean);
        aq_class_row(w.mean, y > 0 ? w.previous : NULL, gw, t, w.cls);
        char *row_m = out.data + y * gw * (Py_ssize_t)sizeof(int64_t);
        const char *src = values.data + y * gw * rs;
        for (Py_ssize_t x = 0; x < gw; x++) {
            const int c = w.cls[x];
            const int64_t multiplier = aq_classes[c];
            memcpy(row_m + x * (Py_ssize_t)sizeof(int64_t), &multiplier, sizeof(int64_t));
            /* the row's integers at its class (every column checked, as numpy's quantizer
               checks them), and its energy sum_k (min(|a_k|, 32767) M)^2 over k >= 1 */
            double energy = 0.0;
            for (Py_ssize_t k = 0; k < kk; k++) {
                const double level = aq_level(ld_f32(src + x * rs + k * cs), steps[c][k],
                                              offset[k], &ok);
                if (k) {
                    const double a = aq_clamped(level) * (double)multiplier;
                    energy += a * a;
                }
            }
            w.current[x + 1] = energy;
        }
        aq_row_done(&w, gw);
    }
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(ok);
done:
    PyMem_Free(w.block);
    release(&values);
    release(&table);
    release(&offsets);
    release(&limits);
    release(&out);
    return result;
}

PyDoc_STRVAR(aq_map_doc,
"aq_map(ints, grid_width, limits, mean_weight, out, carry=None, top=True) -> None\n\n"
"codec.aq.causal_map into out (int32, C-contiguous, m): ints (m, K') float32 integers of\n"
"components 0..K'-1 (1 <= K' <= 16) of a patch grid of grid_width columns (m a multiple),\n"
"limits (6,) float64 the thresholds t_j, mean_weight R_p.\n\n"
"With carry (float64, C-contiguous, 2 x (grid_width + 2)), out is a band of the grid's rows\n"
"and ints holds them and, where the band does not end the grid, one row more: the row below,\n"
"of which only component 0 (the patch means) is read. top: the band starts the grid; else\n"
"carry holds the padded patch means (row 0) and energies (row 1) of the row above the band,\n"
"as the previous band's call left them; on return carry holds the band's last row's.");

static PyObject *aq_map(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"ints", "grid_width", "limits", "mean_weight", "out", "carry",
                            "top", NULL};
    PyObject *o_ints, *o_limits, *o_out, *o_carry = Py_None, *result = NULL;
    Py_ssize_t gw;
    double weight;
    int top = 1;
    Arr ints = {0}, limits = {0}, out = {0}, carry = {0};
    AqRows w = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOdO|Op:aq_map", names, &o_ints, &gw,
                                     &o_limits, &weight, &o_out, &o_carry, &top))
        return NULL;
    const int banded = o_carry != Py_None;
    if (get_array(o_ints, &ints, "ints", 2, T_F32, 0) < 0
        || get_array(o_limits, &limits, "limits", 1, T_F64, 0) < 0
        || get_array(o_out, &out, "out", 1, T_I32, A_WRITABLE | A_CONTIGUOUS) < 0
        || (banded && get_array(o_carry, &carry, "carry", 2, T_F64,
                                A_WRITABLE | A_CONTIGUOUS) < 0))
        goto done;
    Py_ssize_t m = out.size, rows_in = ints.shape[0], kk = ints.shape[1];
    if (gw < 1 || m % gw != 0 || kk < 1 || kk > AQ_MAX_COMPONENTS || limits.size != 6
        || !(rows_in == m || (banded && m > 0 && gw <= PY_SSIZE_T_MAX - m
                              && rows_in == m + gw))
        || (banded && (carry.shape[0] != 2 || carry.shape[1] != gw + 2))
        || (!banded && !top)) {
        value_error("aq_map: needs ints (m, K') with 1 <= K' <= 16 and m a multiple of "
                    "grid_width >= 1, limits (6,), out (m,); with carry (2, grid_width + 2), "
                    "ints may hold one grid row more than out; top=False needs carry");
        goto done;
    }
    Py_ssize_t gh = m / gw;
    double t[6];
    aq_thresholds(&limits, t);
    if (m == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* the patch means' rows: the row above the band, its gh rows, the row below */
    if (aq_rows(&w, gh, gw) < 0)
        goto done;
    int32_t *o = (int32_t *)out.data;
    double *state = banded ? (double *)carry.data : NULL;
    const int below = rows_in > m;
    Py_BEGIN_ALLOW_THREADS
    double *mu = w.mu;
    const Py_ssize_t padded = w.padded, rs = ints.strides[0], cs = ints.strides[1];
    for (Py_ssize_t y = 0; y < gh + below; y++) { /* mu row y + 1: the band's row y */
        double *row = mu + (y + 1) * padded;
        const char *src = ints.data + y * gw * rs;
        for (Py_ssize_t x = 0; x < gw; x++)
            row[x + 1] = ld_f32(src + x * rs);
        aq_pad(row, gw);
    }
    if (!below) /* the grid's last row: its own means below it */
        memcpy(mu + (gh + 1) * padded, mu + gh * padded, (size_t)padded * sizeof(double));
    if (top) /* the grid's first row: its own means above it, and no energies */
        memcpy(mu, mu + padded, (size_t)padded * sizeof(double));
    else {
        memcpy(mu, state, (size_t)padded * sizeof(double));
        memcpy(w.previous, state + padded, (size_t)padded * sizeof(double));
    }
    for (Py_ssize_t y = 0; y < gh; y++) {
        aq_mean_row(mu + y * padded, mu + (y + 1) * padded, mu + (y + 2) * padded, gw, weight,
                    w.mean);
        aq_class_row(w.mean, y > 0 || !top ? w.previous : NULL, gw, t, w.cls);
        int32_t *row_m = o + y * gw;
        for (Py_ssize_t x = 0; x < gw; x++)
            row_m[x] = aq_classes[w.cls[x]];
        /* this row's energies N = sum_k (c(A_k) M)^2 (< 2^46), for the row below */
        double *current = w.current;
        for (Py_ssize_t x = 0; x < gw; x++)
            current[x + 1] = 0.0;
        const char *src = ints.data + y * gw * rs;
        for (Py_ssize_t k = 1; k < kk; k++)
            for (Py_ssize_t x = 0; x < gw; x++) {
                const double a = aq_clamped(ld_f32(src + x * rs + k * cs)) * row_m[x];
                current[x + 1] += a * a;
            }
        aq_row_done(&w, gw);
    }
    if (state != NULL) { /* the band's last row, for the band below */
        memcpy(state, mu + gh * padded, (size_t)padded * sizeof(double));
        memcpy(state + padded, w.previous, (size_t)padded * sizeof(double));
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(w.block);
    release(&ints);
    release(&limits);
    release(&out);
    release(&carry);
    return result;
}

/* ------------------------------------------------------------------------ block records
   (format version 5, spec §4.2; format.reader._parse_blocks)

   A factor chunk's block records and the zstd frame headers of their blocks, parsed in one
   call: a small image's dozen records took about a tenth of its decode in the interpreter.
   The Python reader stays the reference: this parser accepts a chunk only where every
   check of reader._record and blocks.check_frame passes, and is stricter where that is
   simpler (a frame with a dictionary-ID field or a set unused bit, an unlikely grid size):
   for anything it does not accept it returns None and the reader parses the chunk again,
   raising its own error (or accepting what only this parser refused). Every length and
   offset read from the payload is checked against the payload before it is used. */

#define RECORD_WINDOW 28 /* records.MAX_RECORD_BYTES: a record's fields lie within it */
#define RECORD_MAX_WINDOW (1u << 23) /* blocks.MAX_WINDOW */
#define RECORD_ZSTD_BLOCK (1u << 17) /* blocks.ZSTD_BLOCK */

/* A LEB128 field (records.read_varint): at most 5 bytes before `end`, below 2^32, shortest
   form. Returns 0 and leaves *at after it, or -1. */
static int record_varint(const uint8_t *p, size_t end, size_t *at, uint64_t *value)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 5; i++) {
        if (*at + i >= end)
            return -1;
        uint8_t byte = p[*at + i];
        v |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            if ((i && !byte) || v >= (1ull << 32))
                return -1;
            *at += i + 1;
            *value = v;
            return 0;
        }
    }
    return -1;
}

/* blocks.check_frame of a magicless zstd frame (RFC 8878 §3.1.1 without its magic number)
   of `size` bytes that must decompress to `nbytes`: content size declared and equal, no
   dictionary, window at most MAX_WINDOW, whole blocks up to the last one (and the checksum)
   filling the frame exactly. 0 if it passes, -1 otherwise. */
static int record_frame(const uint8_t *f, size_t size, uint64_t nbytes)
{
    if (size < 1)
        return -1;
    unsigned fhd = f[0];
    unsigned fcs_flag = fhd >> 6, single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1;
    if (fhd & 0x1B) /* the unused and reserved bits, a dictionary ID field */
        return -1;
    size_t fcs_size = fcs_flag == 0 ? single : fcs_flag == 1 ? 2 : fcs_flag == 2 ? 4 : 8;
    size_t pos = 1;
    uint64_t window = 0;
    if (!single) {
        if (size < 2)
            return -1;
        unsigned wd = f[1], log = 10 + (wd >> 3);
        if (log > 23)
            return -1;
        window = (1ull << log) + ((1ull << log) >> 3) * (wd & 7);
        pos = 2;
    }
    if (fcs_size == 0 || size - pos < fcs_size)
        return -1; /* no content size: the reader refuses it */
    uint64_t content = 0;
    for (size_t i = 0; i < fcs_size; i++)
        content |= (uint64_t)f[pos + i] << (8 * i);
    if (fcs_size == 2)
        content += 256;
    pos += fcs_size;
    if (single)
        window = content;
    if (content != nbytes || window > RECORD_MAX_WINDOW)
        return -1;
    uint64_t largest = window < RECORD_ZSTD_BLOCK ? window : RECORD_ZSTD_BLOCK;
    for (;;) {
        if (pos > size || size - pos < 3)
            return -1;
        uint32_t word = f[pos] | (uint32_t)f[pos + 1] << 8 | (uint32_t)f[pos + 2] << 16;
        uint32_t kind = (word >> 1) & 3, length = word >> 3;
        if (kind == 3 || length > largest)
            return -1;
        pos += 3 + (kind == 1 ? 1 : length);
        if (word & 1)
            break;
    }
    return pos + 4 * (size_t)checksum == size ? 0 : -1;
}

/* One record (reader._record) at `at`: its fields checked against the planes' (rank, grid
   rows, grid columns) and the cursor of its plane (advanced), its frame against the chunk
   (and, if zstd, `record_frame`). Fills out[] as parse_records returns it; -1 if not
   accepted. */
static int record_one(const uint8_t *p, size_t len, size_t at, int factor,
                      const int64_t *shapes, int64_t *cursor, Py_ssize_t nplanes,
                      int64_t out[14])
{
    size_t left = len - at, end = at + (left < RECORD_WINDOW ? left : RECORD_WINDOW);
    if (left < 3)
        return -1;
    unsigned index = p[at];
    size_t pos = at + 1;
    uint64_t count, nsym = 0, nxrun = 0, nxval = 0, nbytes, size;
    if (record_varint(p, end, &pos, &count) < 0 || index >= (unsigned)nplanes)
        return -1;
    int64_t rank = shapes[3 * index], rows = shapes[3 * index + 1] * shapes[3 * index + 2];
    int64_t first = cursor[index];
    if (count < 1 || (int64_t)count > rank - first || pos >= at + left)
        return -1;
    unsigned byte = p[pos++];
    unsigned coding = byte & 1, stored = (byte >> 1) & 1, predictor = (byte >> 2) & 3,
             code = (byte >> 4) & 7;
    if (byte & 0x80 || rows < 1 || rows > (1ll << 42))
        return -1;
    static const unsigned itemsize[5] = {0, 1, 2, 4, 4};
    if (coding == 0) { /* dense: integers with a predictor for U and V, float32 for S */
        if (code < 1 || code > 4 || (factor == 1) != (code == 4) || (factor == 1 && predictor))
            return -1;
        nbytes = itemsize[code] * count * (uint64_t)rows;
    } else {
        if (factor == 1 || predictor || (code != 2 && code != 3)
            || record_varint(p, end, &pos, &nsym) < 0
            || record_varint(p, end, &pos, &nxrun) < 0
            || record_varint(p, end, &pos, &nxval) < 0)
            return -1;
        /* reader.sparse_sizes_fit */
        uint64_t cells = (uint64_t)rows * count;
        if (nsym < (uint64_t)rows)
            return -1;
        uint64_t values = nsym - (uint64_t)rows;
        if (values > cells || nxrun > values || nxval > values
            || nxrun > (uint64_t)rows * (count / 16) || values + 15 * nxrun > cells)
            return -1;
        nbytes = nsym + 2 * nxrun + itemsize[code] * nxval;
    }
    if (stored)
        size = nbytes;
    else if (record_varint(p, end, &pos, &size) < 0)
        return -1;
    if (size > len - pos)
        return -1;
    if (!stored && record_frame(p + pos, (size_t)size, nbytes) < 0)
        return -1;
    cursor[index] = first + (int64_t)count;
    int64_t fields[14] = {index, first, (int64_t)count, coding, predictor, code,
                          (int64_t)nsym, (int64_t)nxrun, (int64_t)nxval, (int64_t)at,
                          (int64_t)pos, (int64_t)(pos + size), stored, (int64_t)nbytes};
    memcpy(out, fields, sizeof fields);
    return 0;
}

/* An S block's values (reader._singular_values): its content (block_content), float32, each
   finite and positive, as a new float32 array; None where they are not (or the content is not
   theirs: the Python reader then reads the block and raises its error), NULL with an exception
   set. */
static PyObject *singular_values(PyObject *frame, PyObject *form, Py_ssize_t nbytes,
                                 PyObject *decompressors)
{
#if !PY_LITTLE_ENDIAN
    Py_RETURN_NONE; /* the file's binary32 are little-endian: the Python reader swaps them */
#else
    HeldBlock h = {0};
    const char *content = NULL;
    Py_ssize_t length = 0;
    PyObject *result = NULL;
    int got = block_content(frame, form, nbytes, decompressors, &h, &content, &length);
    if (got < 0)
        goto done;
    if (got == 0 || length < 4 || length % 4) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    for (Py_ssize_t i = 0; i < length / 4; i++) {
        float v = ld_f32(content + 4 * i);
        if (!isfinite(v) || !(v > 0.0f)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    Arr values;
    result = new_array(numpy_empty, length / 4, "<f4", &values);
    if (result != NULL) {
        memcpy(values.data, content, (size_t)length);
        release(&values);
    }
done:
    held_release(&h);
    return result;
#endif
}

/* A new object of class cls (format.blocks.Block, a class with slots) whose attributes
   `fields` (names) are the items of row, as Block.of_fields sets them. */
static PyObject *record_block(PyObject *cls, PyObject *fields, PyObject *row)
{
    PyObject *block = PyType_GenericNew((PyTypeObject *)cls, NULL, NULL);
    if (block == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(fields); j++)
        if (PyObject_GenericSetAttr(block, PyTuple_GET_ITEM(fields, j),
                                    PyTuple_GET_ITEM(row, j)) < 0) {
            Py_CLEAR(block);
            break;
        }
    return block;
}

/* parse_records' rows as Blocks (`block`: the class and its 12 field names), the S blocks'
   values read and checked (singular_values), and `advance` (the reader's cursor dict:
   (plane, factor name) -> next component) moved past them: 1, or 0 where an S block's values
   are refused (nothing changed), -1 with an exception set. */
static int record_blocks(PyObject *list, int factor, PyObject *name, PyObject *block,
                         PyObject *decompressors, PyObject *advance)
{
    PyObject *cls, *fields;
    if (block_names() < 0)
        return -1;
    if (!PyArg_ParseTuple(block, "O!O!:parse_records block", &PyType_Type, &cls,
                          &PyTuple_Type, &fields))
        return -1;
    if (PyTuple_GET_SIZE(fields) != 12 || !PyDict_Check(decompressors)
        || !PyDict_Check(advance)) {
        value_error("parse_records: block is (a class, its 12 field names), "
                    "decompressors and advance dicts");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(list, i), *made = NULL;
        if (factor == 1) { /* (factor, plane, first, count, coding, (values,), predictor,
                              stored, None, (), form, -1), as reader._singular_values */
            PyObject *values = singular_values(PyTuple_GET_ITEM(row, 8),
                                               PyTuple_GET_ITEM(row, 10),
                                               PyLong_AsSsize_t(PyTuple_GET_ITEM(row, 11)),
                                               decompressors);
            if (values == NULL || values == Py_None) {
                Py_XDECREF(values);
                return values == NULL ? -1 : 0;
            }
            PyObject *s_row = Py_BuildValue(
                "(OOOOO(N)OOO()Oi)", PyTuple_GET_ITEM(row, 0), PyTuple_GET_ITEM(row, 1),
                PyTuple_GET_ITEM(row, 2), PyTuple_GET_ITEM(row, 3), PyTuple_GET_ITEM(row, 4),
                values, PyTuple_GET_ITEM(row, 6), PyTuple_GET_ITEM(row, 7), Py_None,
                PyTuple_GET_ITEM(row, 10), -1);
            if (s_row == NULL)
                return -1;
            made = record_block(cls, fields, s_row);
            Py_DECREF(s_row);
        } else {
            made = record_block(cls, fields, row);
        }
        if (made == NULL)
            return -1;
        PyList_SET_ITEM(list, i, made); /* the row's reference goes */
        Py_DECREF(row);
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* reader._compiled_blocks' cursor, block by block */
        PyObject *b = PyList_GET_ITEM(list, i), *plane, *first, *count, *key, *end;
        if (!(plane = PyObject_GetAttr(b, s_plane)))
            return -1;
        key = PyTuple_Pack(2, plane, name);
        Py_DECREF(plane);
        first = key ? PyObject_GetAttr(b, s_first) : NULL;
        count = first ? PyObject_GetAttr(b, s_count) : NULL;
        end = count ? PyNumber_Add(first, count) : NULL;
        int ok = end != NULL && PyDict_SetItem(advance, key, end) == 0;
        Py_XDECREF(key);
        Py_XDECREF(first);
        Py_XDECREF(count);
        Py_XDECREF(end);
        if (!ok)
            return -1;
    }
    return 1;
}

PyDoc_STRVAR(parse_records_doc,
"parse_records(payload, factor, shapes, cursor, names, block=None, decompressors=None,\n"
"              advance=None) -> list | None\n\n"
"The blocks of a version 5 factor chunk (format.reader._parse_blocks), every record field\n"
"and zstd frame header checked: factor 0, 1, 2 for U, S, V; shapes a tuple per plane of\n"
"(rank, grid rows, grid columns) of that factor; cursor a tuple per plane of the next\n"
"component of that factor; names (factor name, the element dtypes by type code 0-4, the\n"
"symbol and run escape dtypes, the stored and magicless forms). Per block, in order, the\n"
"arguments of format.blocks.Block: (factor, plane, first, count, coding, None, predictor,\n"
"bytes in the file, frame (a slice of payload), parts, form, content bytes). None where the\n"
"Python reader must parse the chunk again. block: (format.blocks.Block, its field names):\n"
"then the blocks themselves, an S block's values read (decompressors: form -> zstd\n"
"decompressor, None for stored) and checked as reader._singular_values checks them (None\n"
"where they are refused), and `advance` (the reader's cursor) moved past the blocks.");

/* The `parts` of a block (reader._dense_parts, reader._sparse_parts): ((dtype, shape), ...). */
static PyObject *record_parts(const int64_t f[14], int factor, const int64_t *shape,
                              PyObject *types, PyObject *symbol, PyObject *run)
{
    PyObject *element = PyTuple_GET_ITEM(types, f[5]);
    if (f[3] == 0) {
        PyObject *dims = factor == 1 ? Py_BuildValue("(L)", (long long)f[2])
            : Py_BuildValue("(LLL)", (long long)f[2], (long long)shape[1], (long long)shape[2]);
        return dims == NULL ? NULL : Py_BuildValue("((ON))", element, dims);
    }
    return Py_BuildValue("((O(L))(O(L))(O(L)))", symbol, (long long)f[6], run,
                         (long long)f[7], element, (long long)f[8]);
}

/* Most kinds of `parts` one parse_records call shares: a chunk of thousands of one-component
   blocks has a few kinds of record, and each parts tuple costs about 400 bytes a block; an
   attacker's chunk of blocks of distinct sizes gains nothing from more kinds kept. */
#define PARTS_SHARED 1024
/* Most bytes of a block's frame that parse_records copies (format.reader.SMALL_FRAME). */
#define SMALL_FRAME 128

/* cache[key] (`size` bytes) as a new reference where the cache holds it; else NULL, with *k
   the key's bytes (a new reference, for `kept`), or with *k NULL on an error. */
static PyObject *cached(PyObject *cache, const void *key, Py_ssize_t size, PyObject **k)
{
    *k = PyBytes_FromStringAndSize((const char *)key, size);
    if (*k == NULL)
        return NULL;
    PyObject *value = PyDict_GetItemWithError(cache, *k); /* borrowed */
    if (value != NULL || PyErr_Occurred()) {
        Py_CLEAR(*k);
        return Py_XNewRef(value);
    }
    return NULL;
}

/* value (a new reference, or NULL on an error) stored under k (released here) while the
   cache holds fewer than PARTS_SHARED entries: value, or NULL if storing it failed. */
static PyObject *kept(PyObject *cache, PyObject *k, PyObject *value)
{
    if (value != NULL && PyDict_GET_SIZE(cache) < PARTS_SHARED
        && PyDict_SetItem(cache, k, value) < 0)
        Py_CLEAR(value);
    Py_DECREF(k);
    return value;
}

/* A sparse block's part (dtype, (n,)), the same tuple for every block of `cache` (the call's
   dict) with the same stream `tag` (1 symbols, 2 run escapes, 3 value escapes), element type
   code and n: blocks of distinct symbol counts mostly share their empty escape streams' parts.
   A new reference. */
static PyObject *shared_part(PyObject *cache, int64_t tag, int64_t code, int64_t n,
                             PyObject *dtype)
{
    int64_t key[3] = {tag, code, n}; /* 24 bytes: never a parts key (40 bytes) */
    PyObject *k, *part = cached(cache, key, sizeof key, &k);
    if (k == NULL) /* found, or an error */
        return part;
    return kept(cache, k, Py_BuildValue("(O(L))", dtype, (long long)n));
}

/* record_parts, the same tuple for every block of the same sizes (`cache`: the call's dict of
   them, by the sizes' bytes; a sparse block's parts made of `shared_part`s). A new
   reference. */
static PyObject *shared_parts(PyObject *cache, const int64_t f[14], int factor,
                              const int64_t *shape, PyObject *types, PyObject *symbol,
                              PyObject *run)
{
    int dense = f[3] == 0, grid = dense && factor != 1;
    int64_t key[5] = {f[3], f[5], dense ? f[2] : f[6], dense ? (grid ? shape[1] : 0) : f[7],
                      dense ? (grid ? shape[2] : 0) : f[8]};
    PyObject *k, *parts = cached(cache, key, sizeof key, &k);
    if (k == NULL) /* found, or an error */
        return parts;
    if (dense) {
        parts = record_parts(f, factor, shape, types, symbol, run);
    } else {
        PyObject *a = shared_part(cache, 1, 0, f[6], symbol);
        PyObject *b = a == NULL ? NULL : shared_part(cache, 2, 0, f[7], run);
        PyObject *c = b == NULL ? NULL
            : shared_part(cache, 3, f[5], f[8], PyTuple_GET_ITEM(types, f[5]));
        parts = c == NULL ? NULL : PyTuple_Pack(3, a, b, c);
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
    }
    return kept(cache, k, parts);
}

static PyObject *parse_records(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"payload", "factor", "shapes", "cursor", "names", "block",
                         "decompressors", "advance", NULL};
    Py_buffer view;
    int factor;
    PyObject *payload, *o_shapes, *o_cursor, *name, *types, *symbol, *run, *stored_form,
             *magicless, *result = NULL, *list = NULL, *shared = NULL, *block = Py_None,
             *decompressors = Py_None, *advance = Py_None;
    int64_t shapes[3 * 256], cursor[256];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiO!O!(UO!OOUU)|OOO", kw, &payload, &factor,
                                     &PyTuple_Type, &o_shapes, &PyTuple_Type, &o_cursor,
                                     &name, &PyTuple_Type, &types, &symbol, &run,
                                     &stored_form, &magicless, &block, &decompressors,
                                     &advance))
        return NULL;
    if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t nplanes = PyTuple_GET_SIZE(o_shapes);
    if (factor < 0 || factor > 2 || nplanes > 256 || PyTuple_GET_SIZE(o_cursor) != nplanes
        || PyTuple_GET_SIZE(types) != 5) {
        value_error("parse_records: factor 0..2, at most 256 planes, a cursor per plane, "
                    "5 element types");
        goto done;
    }
    for (Py_ssize_t i = 0; i < nplanes; i++) {
        PyObject *shape = PyTuple_GET_ITEM(o_shapes, i);
        if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) != 3) {
            value_error("parse_records: a shape is (rank, rows, columns)");
            goto done;
        }
        for (int j = 0; j < 3; j++) {
            shapes[3 * i + j] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, j));
            if (shapes[3 * i + j] < 0 || shapes[3 * i + j] > (j ? 1ll << 31 : 1ll << 16)) {
                if (!PyErr_Occurred())
                    value_error("parse_records: a rank within 0..2^16, grid sides within "
                                "0..2^31");
                goto done;
            }
        }
        cursor[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(o_cursor, i));
        if (cursor[i] < 0 || cursor[i] > shapes[3 * i]) {
            if (!PyErr_Occurred())
                value_error("parse_records: a cursor is within 0..rank");
            goto done;
        }
    }
    const uint8_t *p = (const uint8_t *)view.buf;
    size_t len = (size_t)view.len, at = 0;
    int64_t f[14];
    list = PyList_New(0);
    shared = PyDict_New();
    if (list == NULL || shared == NULL)
        goto done;
    do {
        if (record_one(p, len, at, factor, shapes, cursor, nplanes, f) < 0) {
            Py_INCREF(Py_None);
            result = Py_None;
            goto done;
        }
        /* a small frame copied (reader.SMALL_FRAME: a bytes object of a few dozen bytes is
           smaller than a memoryview of them), a larger one a slice of the payload */
        Py_ssize_t frame_bytes = (Py_ssize_t)(f[11] - f[10]);
        PyObject *frame = frame_bytes <= SMALL_FRAME
            ? PyBytes_FromStringAndSize((const char *)p + f[10], frame_bytes)
            : PySequence_GetSlice(payload, (Py_ssize_t)f[10], (Py_ssize_t)f[11]);
        PyObject *parts = frame == NULL ? NULL
            : shared_parts(shared, f, factor, shapes + 3 * f[0], types, symbol, run);
        PyObject *row = parts == NULL ? NULL
            : Py_BuildValue("(OLLLLOLLOOOL)", name, (long long)f[0], (long long)f[1],
                            (long long)f[2], (long long)f[3], Py_None, (long long)f[4],
                            (long long)(f[11] - f[9]), frame, parts,
                            f[12] ? stored_form : magicless, (long long)f[13]);
        Py_XDECREF(frame);
        Py_XDECREF(parts);
        if (row == NULL || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
        at = (size_t)f[11];
    } while (at != len);
    if (block != Py_None) {
        int made = record_blocks(list, factor, name, block, decompressors, advance);
        if (made <= 0) {
            result = made < 0 ? NULL : Py_NewRef(Py_None);
            goto done;
        }
    }
    result = list;
    list = NULL;
done:
    Py_XDECREF(list);
    Py_XDECREF(shared);
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------------------------------ chunk table
   (format.reader._chunks, spec §1)

   Every chunk's length, type and CRC-32 checked in one call, for a small file whose chunk
   walk took a tenth of its reading in the interpreter (zlib's CRC loop here counted more
   instructions than this table-driven one). As with the block records, the Python walk is the
   reference: for a file this does not accept, `unpack` walks it in Python and raises its
   error at the same step. */

static uint32_t crc_tables[8][256];

/* CRC-32 of PNG and zlib (reflected, polynomial 0xEDB88320), eight bytes a step. */
static void fill_crc_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tables[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_tables[t][n] = crc_tables[0][crc_tables[t - 1][n] & 0xFF]
                               ^ (crc_tables[t - 1][n] >> 8);
}

/* Whether the CPU has PCLMULQDQ and SSE4.1 (crc32_fold's instructions; found by the module's
   initialization), and whether crc32_update folds (`crc_kernel`: tests compare both). */
static int best_crc, crc_folds;

#if FUSED_PRODUCT

/* The CRC-32 register (inverted, as crc32_update holds it) after n bytes at p, n a multiple
   of 16 and at least 64: four 128-bit lanes folded forward 64 bytes a step by carry-less
   multiplication, then into one, then 16 bytes a step, and reduced to 32 bits (Barrett),
   as in V. Gopal, E. Ozturk et al., "Fast CRC Computation for Generic Polynomials Using
   PCLMULQDQ Instruction" (Intel, 2009), with the constants of its bit-reflected CRC-32
   (those of zlib's and Chromium's folding copies). The same CRC as the tables': the
   fold is exact arithmetic on the same polynomial (tests/test_record_parser.py compares
   chunk_table's CRC, folded and by the tables, with zlib's at every length up to 300 bytes
   and larger ones). */
/* One 128-bit lane folded forward over the distance the constants k stand for, onto `next`
   (the data there, or the lane it is folded into). */
__attribute__((target("sse4.1,pclmul")))
static inline __m128i fold128(__m128i x, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), next),
                         _mm_clmulepi64_si128(x, k, 0x00));
}

__attribute__((target("sse4.1,pclmul")))
static uint32_t crc32_fold(uint32_t crc, const uint8_t *p, size_t n)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i x1 = _mm_loadu_si128((const __m128i *)p),
            x2 = _mm_loadu_si128((const __m128i *)(p + 16)),
            x3 = _mm_loadu_si128((const __m128i *)(p + 32)),
            x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {
        x1 = fold128(x1, k1k2, _mm_loadu_si128((const __m128i *)p));
        x2 = fold128(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 16)));
        x3 = fold128(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 32)));
        x4 = fold128(x4, k1k2, _mm_loadu_si128((const __m128i *)(p + 48)));
    }
    /* the four lanes into one, then the 16-byte blocks left */
    x1 = fold128(fold128(fold128(x1, k3k4, x2), k3k4, x3), k3k4, x4);
    for (; n >= 16; p += 16, n -= 16)
        x1 = fold128(x1, k3k4, _mm_loadu_si128((const __m128i *)p));
    /* 128 bits to 64, then Barrett's reduction to 32 */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5k0, 0x00), x2);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, low32), poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
#if FUSED_PRODUCT
    if (crc_folds && n >= 64) {
        const size_t whole = n & ~(size_t)15;
        crc = crc32_fold(crc, p, whole);
        p += whole;
        n -= whole;
    }
#endif
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = ld_u32(p) ^ crc, hi = ld_u32(p + 4);
        crc = crc_tables[7][lo & 0xFF] ^ crc_tables[6][(lo >> 8) & 0xFF]
              ^ crc_tables[5][(lo >> 16) & 0xFF] ^ crc_tables[4][lo >> 24]
              ^ crc_tables[3][hi & 0xFF] ^ crc_tables[2][(hi >> 8) & 0xFF]
              ^ crc_tables[1][(hi >> 16) & 0xFF] ^ crc_tables[0][hi >> 24];
    }
    for (; n; n--, p++)
        crc = crc_tables[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

PyDoc_STRVAR(encoder_kernels_doc,
"encoder_kernels(level=-1) -> int\n\n"
"The encoder's loops in use: 0 the generic ones, 1 AVX2 (quantize's strips, symbols' rows of\n"
"at most 16 16-bit integers; the best the CPU runs, chosen at import). level >= 0 chooses\n"
"another one, at most the best (ValueError otherwise): for tests, which compare them.\n"
"Process-wide and unlocked. Returns the level in use before the call.");

static PyObject *encoder_kernels(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return switch_level(args, kwargs, "|i:encoder_kernels", &encoder_level, best_encoder,
                        "encoder_kernels: level above what this CPU runs");
}

PyDoc_STRVAR(crc_kernel_doc,
"crc_kernel(level=-1) -> int\n\n"
"The CRC-32 of chunk_table in use: 0 tables (8 bytes a step), 1 folding by carry-less\n"
"multiplication (PCLMULQDQ; the best the CPU runs, chosen at import). level >= 0 chooses\n"
"another one, at most the best (ValueError otherwise): for tests, which compare them. Process-\n"
"wide and unlocked. Returns the level in use before the call.");

static PyObject *crc_kernel(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return switch_level(args, kwargs, "|i:crc_kernel", &crc_folds, best_crc,
                        "crc_kernel: level above what this CPU runs");
}

ALWAYS_INLINE uint32_t ld_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ALWAYS_INLINE int ascii_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

PyDoc_STRVAR(chunk_table_doc,
"chunk_table(data, start, max_chunk, listed=None, runs=None, most_listed=-1) -> list | None\n\n"
"The chunks of a file from byte `start` (after the signature), as format.reader._chunks\n"
"yields them: a row (type, positions) per chunk before IEND, positions the bytes of native\n"
"int64 pairs (payload start, payload length) in the data, every length within max_chunk and\n"
"the data, every type ASCII letters, every CRC-32 right, an empty IEND that ends the data;\n"
"None where it is not so (the Python walk then raises its error).\n"
"listed (bytes of 4-byte types): the ancillary chunks (lower-case first letter) to list;\n"
"the others are checked and left out, but for the first chunk (the reader refuses an\n"
"ancillary chunk before HEAD): a file of many unknown chunks, which the reader skips,\n"
"costs no table row each.\n"
"runs (bytes of 4-byte types): consecutive chunks of one of these types share one row, a\n"
"pair each: a file of many small residual blocks costs 16 bytes a chunk, not a row.\n"
"most_listed (>= 0): None once more listed ancillary chunks than this come (more than a\n"
"valid file holds: the Python walk then refuses the file at the chunk past the limit,\n"
"without a row for each of the chunks after it).");

/* Whether the 4-byte `kind` is one of the `count` types packed in `listed`. */
static int listed_type(const uint8_t *kind, const uint8_t *listed, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        if (memcmp(kind, listed + 4 * i, 4) == 0)
            return 1;
    return 0;
}

/* chunk_table's argument `name`, bytes of 4-byte chunk types: their start and count; 0, or -1
   with an exception set. */
static int chunk_types(PyObject *arg, const char *name, const uint8_t **types, Py_ssize_t *count)
{
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) % 4) {
        PyErr_Format(PyExc_ValueError, "chunk_table: %s is bytes of 4-byte chunk types", name);
        return -1;
    }
    *types = (const uint8_t *)PyBytes_AS_STRING(arg);
    *count = PyBytes_GET_SIZE(arg) / 4;
    return 0;
}

/* chunk_table's row of the chunk positions gathered in `pairs` (2 x count int64), appended
   to `list` under `type` (4 bytes); 0, or -1 with an exception set. */
static int chunk_row(PyObject *list, const uint8_t *type, const int64_t *pairs, size_t count)
{
    PyObject *kind = PyBytes_FromStringAndSize((const char *)type, 4);
    PyObject *positions = kind == NULL ? NULL
        : PyBytes_FromStringAndSize((const char *)pairs, (Py_ssize_t)(2 * count * sizeof(int64_t)));
    PyObject *row = positions == NULL ? NULL : PyTuple_Pack(2, kind, positions);
    Py_XDECREF(kind);
    Py_XDECREF(positions);
    int failed = row == NULL || PyList_Append(list, row) < 0;
    Py_XDECREF(row);
    return failed ? -1 : 0;
}

static PyObject *chunk_table(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"data", "start", "max_chunk", "listed", "runs", "most_listed", NULL};
    PyObject *data, *list = NULL, *result = NULL, *listed_arg = Py_None, *runs_arg = Py_None;
    Py_ssize_t start, max_chunk, most_listed = -1, listed_seen = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!nn|OOn", kw, &PyBytes_Type, &data, &start,
                                     &max_chunk, &listed_arg, &runs_arg, &most_listed))
        return NULL;
    const uint8_t *listed = NULL, *runs = NULL;
    Py_ssize_t listed_count = -1; /* -1: every chunk listed */
    Py_ssize_t runs_count = 0;
    if ((listed_arg != Py_None && chunk_types(listed_arg, "listed", &listed, &listed_count) < 0)
        || (runs_arg != Py_None && chunk_types(runs_arg, "runs", &runs, &runs_count) < 0))
        return NULL;
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(data);
    size_t len = (size_t)PyBytes_GET_SIZE(data), pos;
    if (start < 0 || (size_t)start > len || max_chunk < 0) {
        value_error("chunk_table: start within the data, max_chunk >= 0");
        return NULL;
    }
    /* the run in progress: its type and its chunks' positions (grown by doubling) */
    const uint8_t *run_type = NULL;
    int64_t *pairs = NULL;
    size_t count = 0, capacity = 0;
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    for (pos = (size_t)start;;) {
        if (len - pos < 12)
            goto decline;
        uint32_t length = ld_be32(p + pos);
        const uint8_t *kind = p + pos + 4;
        if (!(ascii_letter(kind[0]) && ascii_letter(kind[1]) && ascii_letter(kind[2])
              && ascii_letter(kind[3]))
            || (uint64_t)length > (uint64_t)max_chunk || length > len - pos - 12)
            goto decline;
        if (crc32_update(0, kind, 4 + (size_t)length) != ld_be32(p + pos + 8 + length))
            goto decline;
        if (memcmp(kind, "IEND", 4) == 0) {
            if (length == 0 && pos + 12 == len)
                break;
            goto decline;
        }
        if (listed_count >= 0 && kind[0] >= 'a' && pos != (size_t)start
            && !listed_type(kind, listed, listed_count)) {
            pos += 12 + (size_t)length; /* an ancillary chunk the reader skips */
            continue;
        }
        if (kind[0] >= 'a' && most_listed >= 0 && ++listed_seen > most_listed)
            goto decline; /* more than a valid file holds: the Python walk says where */
        if (count && !(run_type != NULL && memcmp(kind, run_type, 4) == 0)) {
            if (chunk_row(list, run_type, pairs, count) < 0)
                goto done;
            count = 0;
        }
        run_type = listed_type(kind, runs, runs_count) ? kind : NULL;
        if (count == capacity) {
            size_t grown = capacity ? 2 * capacity : 16;
            int64_t *more = PyMem_Realloc(pairs, 2 * grown * sizeof(int64_t));
            if (more == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            pairs = more;
            capacity = grown;
        }
        pairs[2 * count] = (int64_t)(pos + 8);
        pairs[2 * count + 1] = (int64_t)length;
        count++;
        if (run_type == NULL) { /* a chunk of its own row */
            if (chunk_row(list, kind, pairs, count) < 0)
                goto done;
            count = 0;
        }
        pos += 12 + (size_t)length;
    }
    if (count && chunk_row(list, run_type, pairs, count) < 0)
        goto done;
    result = list;
    list = NULL;
    goto done;
decline:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(pairs);
    Py_XDECREF(list);
    return result;
}

/* ------------------------------------------------------ encoding: deblocking goal (target) */

/* Bounds of deblock_goal: 255 (|w_0| + ... + |w_c-1|) + |offset| stays below GAIN_GOAL_LIMIT,
   so every partial sum fits int32 and every goal is one deblock_gains takes. */
#define GOAL_WEIGHT_LIMIT (1 << 17)

HOT static void goal_row_packed3(const uint8_t *RESTRICT row, Py_ssize_t w,
                             const int32_t *RESTRICT weight, int32_t base,
                             int32_t *RESTRICT out)
{
    int32_t w0 = weight[0], w1 = weight[1], w2 = weight[2];
    for (Py_ssize_t x = 0; x < w; x++)
        out[x] = base + w0 * (int32_t)row[3 * x] + w1 * (int32_t)row[3 * x + 1]
                 + w2 * (int32_t)row[3 * x + 2];
}

PyDoc_STRVAR(deblock_goal_doc,
"deblock_goal(pixels, weights, offset, out) -> None\n\n"
"The goal deblock_gains judges a channel against, in units of 2^-16, from 8-bit pixels\n"
"((rows, w, c) uint8, any strides): out[y, x] ((rows, w) int32, C-contiguous) =\n"
"offset + sum_k weights[k] pixels[y, x, k] (weights int64 (c,)), in integers. The numpy\n"
"path (encoder.deblock.goal_rows) computes the same sums; with the Y'CbCr weights they are\n"
"the float32 target of encoder.deblock.target_channel times 2^16, exactly.");

static PyObject *deblock_goal(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"pixels", "weights", "offset", "out", NULL};
    PyObject *o_pixels, *o_weights, *o_out, *result = NULL;
    long long offset;
    Arr pa = {0}, wa = {0}, oa = {0};
    int32_t *weight = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOLO:deblock_goal", names, &o_pixels,
                                     &o_weights, &offset, &o_out))
        return NULL;
    if (get_array(o_pixels, &pa, "pixels", 3, T_U8, 0) < 0
        || get_array(o_weights, &wa, "weights", 1, T_I64, A_CONTIGUOUS) < 0
        || get_array(o_out, &oa, "out", 2, T_I32, A_CONTIGUOUS | A_WRITABLE) < 0)
        goto done;
    Py_ssize_t rows = pa.shape[0], w = pa.shape[1], c = pa.shape[2];
    if (c < 1 || wa.shape[0] != c || oa.shape[0] != rows || oa.shape[1] != w) {
        value_error("deblock_goal: needs pixels (rows, w, c) with c >= 1, weights (c,) and "
                    "out (rows, w)");
        goto done;
    }
    const int64_t *wv = (const int64_t *)wa.data;
    weight = malloc(sizeof(int32_t) * (size_t)c);
    if (weight == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t reach = offset < 0 ? -(int64_t)offset : (int64_t)offset;
    int bad = offset <= -GAIN_GOAL_LIMIT || offset >= GAIN_GOAL_LIMIT;
    for (Py_ssize_t k = 0; k < c; k++) {
        bad |= wv[k] <= -GOAL_WEIGHT_LIMIT || wv[k] >= GOAL_WEIGHT_LIMIT;
        weight[k] = bad ? 0 : (int32_t)wv[k];
        reach += bad ? 0 : 255 * (wv[k] < 0 ? -wv[k] : wv[k]);
    }
    if (bad || reach >= GAIN_GOAL_LIMIT) {
        value_error("deblock_goal: 255 times the sum of |weights| plus |offset| must be "
                    "below 2^26");
        goto done;
    }
    const char *px = pa.data;
    Py_ssize_t sy = pa.strides[0], sx = pa.strides[1], sc = pa.strides[2];
    int32_t base = (int32_t)offset;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < rows; y++) {
        int32_t *out = (int32_t *)oa.data + y * w;
        const char *row = px + y * sy;
        if (c == 3 && sc == 1 && sx == 3) /* packed RGB rows: the channel count a constant */
            goal_row_packed3((const uint8_t *)row, w, weight, base, out);
        else
            for (Py_ssize_t x = 0; x < w; x++) {
                const uint8_t *p = (const uint8_t *)(row + x * sx);
                int32_t sum = base;
                for (Py_ssize_t k = 0; k < c; k++)
                    sum += weight[k] * (int32_t)p[k * sc];
                out[x] = sum;
            }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(weight);
    release(&pa);
    release(&wa);
    release(&oa);
    return result;
}

/* ------------------------------------------------------------------------ module */

#define METHOD(name) {#name, (PyCFunction)(void (*)(void))name, METH_VARARGS | METH_KEYWORDS, \
                      name##_doc}

static PyMethodDef methods[] = {
    METHOD(index_sparse), METHOD(fill_sparse), METHOD(reduce_sparse), METHOD(exact_product),
    METHOD(aq_map), METHOD(aq_encoder_map),
    METHOD(unpredict_into), METHOD(unpredict_rows), METHOD(upsample_ycc),
    METHOD(store_rgb), METHOD(convert_ycc), METHOD(patch_plane), METHOD(lsq_gather),
    METHOD(quantize), METHOD(lattice_integers), METHOD(symbols), METHOD(store_bytes), METHOD(store_floats),
    METHOD(entropy_bits), METHOD(convert_wide_ycc), METHOD(banded_solve), METHOD(banded_cholesky),
    METHOD(deblock),
    METHOD(double_chroma), METHOD(resample_chroma), METHOD(deblock_ycc), METHOD(deblock_gains),
    METHOD(deblock_goal),
    METHOD(column_entropy_bits), METHOD(prediction_bits), METHOD(predicted),
    METHOD(lower_levels), METHOD(colour_rows), METHOD(product_kernel), METHOD(crc_kernel), METHOD(encoder_kernels), METHOD(restore), METHOD(restore_ycc),
    METHOD(parse_records), METHOD(chunk_table), METHOD(exact_weights),
    METHOD(plane_factors), METHOD(whole_factor), METHOD(factor_bytes), METHOD(parse_plan),
    {"factor_index", (PyCFunction)factor_index, METH_O, factor_index_doc},
    {"all_finite", (PyCFunction)all_finite, METH_O, all_finite_doc},
    {"base_pages", (PyCFunction)base_pages, METH_O, base_pages_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "svdcodec.runtime._kernels",
    "The codec's per-sample loops in C (csrc/kernels.c): drop-in for the numpy paths that\n"
    "svdcodec.kernels.get() replaces; same bits, the GIL released in every loop.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void)
{
    PyObject *numpy = PyImport_ImportModule("numpy");
    if (numpy == NULL)
        return NULL;
    numpy_empty = PyObject_GetAttrString(numpy, "empty");
    numpy_zeros = PyObject_GetAttrString(numpy, "zeros");
    Py_DECREF(numpy);
    fill_symbol_table();
    fill_crc_tables();
#if FUSED_PRODUCT
    encoder_level = best_encoder = __builtin_cpu_supports("avx2")
                                   && __builtin_cpu_supports("popcnt");
    fill_symbol_lanes();
    crc_folds = best_crc = __builtin_cpu_supports("pclmul")
                           && __builtin_cpu_supports("sse4.1");
    /* level 2 runs level 1's AVX2 row kernels too: AVX2 and FMA as well as AVX-512F */
    const int fma2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    product_level = best_product = fma2 && __builtin_cpu_supports("avx512f") ? 2 : fma2;
    fused_colour = !__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")
                   && __builtin_cpu_supports("fma");
    channel_masks();
    fill_left_pack8();
    simd_colour = best_colour_rows = !__builtin_cpu_supports("avx2")
                                     || !__builtin_cpu_supports("fma") ? 0
        : __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 2 : 1;
#endif
    if (numpy_empty == NULL || numpy_zeros == NULL)
        return NULL;
    return PyModule_Create(&module);
}
