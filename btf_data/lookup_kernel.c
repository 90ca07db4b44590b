/* Trilinear, wrapped lookups in a packed channels-last pyramid, forwards and backwards: the
 * native twin of btf_data/lookup.py's torch paths (same contract, same texel convention), for
 * the CPU. Built on first use by btf_data/lookup_native.py; plain C99 + OpenMP, no Python or
 * torch headers, so it compiles in about a second with the system's C compiler.
 *
 * Pyramid layout (lookup.py's PackedLevels): one table (rows, c) float32, level k's texel (b, y,
 * x) of texture b at row offs[k] + (b * hs[k] + y) * ws[k] + x. Texel (y, x) has its centre at
 * uv = ((x + 0.5) / w, (y + 0.5) / h); uv has period 1. A query reads the two levels around its
 * lod, clamped to [0, L - 1], bilinearly each, and blends them linearly (the torch paths' lerp
 * order, so that texel centres at integer lods return the texels exactly).
 *
 * Threads: OpenMP, run on the process's already loaded libgomp (torch's), so the kernels share
 * torch's thread pool instead of starting a second one that would spin beside it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef struct {
    int64_t x0, x1, y0, y1;
    float tx, ty;
} Corners;

static inline int64_t wrap_index(int64_t i, int64_t n) {
    if (i < 0) return i + n;
    if (i >= n) return i - n;
    return i;
}

/* Corners and fractions of a bilinear lookup of (u, v) in a level of h x w texels. */
static inline Corners corners_of(float u, float v, int64_t h, int64_t w) {
    Corners k;
    float x = (u - floorf(u)) * (float)w - 0.5f;
    float y = (v - floorf(v)) * (float)h - 0.5f;
    float xf = floorf(x), yf = floorf(y);
    if (!(xf >= -1.0f && xf <= (float)w)) xf = x = 0.0f; /* NaN or infinite uv: read texel 0 */
    if (!(yf >= -1.0f && yf <= (float)h)) yf = y = 0.0f;
    k.tx = x - xf;
    k.ty = y - yf;
    k.x0 = wrap_index((int64_t)xf, w);
    k.y0 = wrap_index((int64_t)yf, h);
    k.x1 = wrap_index(k.x0 + 1, w);
    k.y1 = wrap_index(k.y0 + 1, h);
    return k;
}

/* The two levels (lo, hi) around a lod and the weight of hi; *inside: whether the lod lies in
 * [0, L - 1] before clamping (the lod gradient passes there only, as torch's clamp). */
static inline void level_pair(float lod, int64_t n_levels, int64_t *lo, int64_t *hi, float *f, int *inside) {
    float top = (float)(n_levels - 1);
    *inside = lod >= 0.0f && lod <= top;
    float l = fminf(fmaxf(lod, 0.0f), top); /* NaN -> 0 */
    int64_t i = (int64_t)floorf(l);
    if (i > n_levels - 1) i = n_levels - 1;
    *lo = i;
    *hi = i + 1 < n_levels ? i + 1 : n_levels - 1;
    *f = l - (float)i;
}

static inline const float *row_of(const float *table, int64_t c, int64_t off, int64_t b, int64_t h,
                                  int64_t w, int64_t y, int64_t x) {
    return table + (off + (b * h + y) * w + x) * c;
}

/* LOOP(C) with C a constant for the channel counts this project reads (loops the compiler
 * unrolls and vectorises), else with c itself. */
#define FOR_CHANNELS(c, LOOP)                                                                     \
    switch (c) {                                                                                 \
    case 1: LOOP(1) break;                                                                       \
    case 3: LOOP(3) break;                                                                       \
    case 7: LOOP(7) break;                                                                       \
    case 8: LOOP(8) break;                                                                       \
    case 16: LOOP(16) break;                                                                     \
    default: LOOP(c) break;                                                                      \
    }

#if defined(__AVX512F__)
/* Up to 16 channels as one vector: a row's channels in the lanes of mask m (loads leave the other
 * lanes 0 and never touch their memory; stores leave it alone). The same operations per channel
 * as the scalar code, so the same numbers; a few vector instructions per corner instead of a
 * scalar loop over the channels (7 for the latents: a loop the compiler leaves scalar). */
static inline __mmask16 channel_mask(int64_t c) { return (__mmask16)((1u << c) - 1u); }

static inline __m512 lerp16(__m512 a, __m512 b, __m512 t) {
    return _mm512_add_ps(a, _mm512_mul_ps(_mm512_sub_ps(b, a), t));
}

/* One level's bilinear value of a query's corners q. */
static inline __m512 bilinear16(const float *table, int64_t C, __mmask16 m, int64_t off, int64_t b, int64_t h,
                                int64_t w, Corners q) {
    const __m512 tx = _mm512_set1_ps(q.tx);
    __m512 t00 = _mm512_maskz_loadu_ps(m, row_of(table, C, off, b, h, w, q.y0, q.x0));
    __m512 t01 = _mm512_maskz_loadu_ps(m, row_of(table, C, off, b, h, w, q.y0, q.x1));
    __m512 t10 = _mm512_maskz_loadu_ps(m, row_of(table, C, off, b, h, w, q.y1, q.x0));
    __m512 t11 = _mm512_maskz_loadu_ps(m, row_of(table, C, off, b, h, w, q.y1, q.x1));
    return lerp16(lerp16(t00, t01, tx), lerp16(t10, t11, tx), _mm512_set1_ps(q.ty));
}
#endif

/* One query: out[0..c) = trilinear value. C is a compile-time constant in the specialised copies. */
static inline __attribute__((always_inline)) void forward_one(
    const float *table, int64_t C, int64_t n_levels, const int64_t *offs, const int64_t *hs,
    const int64_t *ws, float u, float v, float lod, int64_t b, float *out) {
    int64_t lo, hi;
    float f;
    int inside;
    level_pair(lod, n_levels, &lo, &hi, &f, &inside);
#if defined(__AVX512F__)
    if (C <= 16) {
        const __mmask16 m = channel_mask(C);
        const Corners ql = corners_of(u, v, hs[lo], ws[lo]);
        __m512 val = bilinear16(table, C, m, offs[lo], b, hs[lo], ws[lo], ql);
        if (hi != lo && f != 0.0f) { /* one level when the lod selects it alone, as below */
            const Corners qh = corners_of(u, v, hs[hi], ws[hi]);
            val = lerp16(val, bilinear16(table, C, m, offs[hi], b, hs[hi], ws[hi], qh), _mm512_set1_ps(f));
        }
        _mm512_mask_storeu_ps(out, m, val);
        return;
    }
#endif
    float val[2][64];
    const int64_t lv[2] = {lo, hi};
    /* One level when the lod selects it alone (bilinear lookups, lods clamped to either end,
     * integer lods): the blend below would return it unchanged. */
    const int n_reads = hi == lo || f == 0.0f ? 1 : 2;
    for (int s = 0; s < n_reads; ++s) {
        int64_t k = lv[s], h = hs[k], w = ws[k];
        Corners q = corners_of(u, v, h, w);
        const float *t00 = row_of(table, C, offs[k], b, h, w, q.y0, q.x0);
        const float *t01 = row_of(table, C, offs[k], b, h, w, q.y0, q.x1);
        const float *t10 = row_of(table, C, offs[k], b, h, w, q.y1, q.x0);
        const float *t11 = row_of(table, C, offs[k], b, h, w, q.y1, q.x1);
        for (int64_t ch = 0; ch < C; ++ch) {
            float top = t00[ch] + (t01[ch] - t00[ch]) * q.tx;
            float bottom = t10[ch] + (t11[ch] - t10[ch]) * q.tx;
            val[s][ch] = top + (bottom - top) * q.ty;
        }
    }
    if (n_reads == 1)
        for (int64_t ch = 0; ch < C; ++ch) out[ch] = val[0][ch];
    else
        for (int64_t ch = 0; ch < C; ++ch) out[ch] = val[0][ch] + (val[1][ch] - val[0][ch]) * f;
}

/* Ask the caches for one query's 8 texels (forward_one's reads) ahead of reading them: for
 * callers that have other work to do meanwhile (neumip/query_kernel.c). Each row's first and last
 * bytes, so that a row across two cache lines comes whole. */
static inline void prefetch_one(const float *table, int64_t C, int64_t n_levels, const int64_t *offs,
                                const int64_t *hs, const int64_t *ws, float u, float v, float lod, int64_t b) {
    int64_t lo, hi;
    float f;
    int inside;
    level_pair(lod, n_levels, &lo, &hi, &f, &inside);
    const int64_t lv[2] = {lo, hi};
    for (int s = 0; s < (hi == lo ? 1 : 2); ++s) {
        int64_t k = lv[s], h = hs[k], w = ws[k];
        Corners q = corners_of(u, v, h, w);
        const float *rows[4] = {row_of(table, C, offs[k], b, h, w, q.y0, q.x0),
                                row_of(table, C, offs[k], b, h, w, q.y0, q.x1),
                                row_of(table, C, offs[k], b, h, w, q.y1, q.x0),
                                row_of(table, C, offs[k], b, h, w, q.y1, q.x1)};
        for (int i = 0; i < 4; ++i) {
            __builtin_prefetch(rows[i]);
            __builtin_prefetch(rows[i] + C - 1);
        }
    }
}

#define FORWARD_LOOP(C)                                                                          \
    _Pragma("omp parallel for num_threads(n_threads) schedule(static)")                          \
    for (int64_t q = 0; q < n; ++q)                                                               \
        forward_one(table, C, n_levels, offs, hs, ws, uv[2 * q], uv[2 * q + 1], lod ? lod[q] : 0.0f, \
                    index ? index[q] : 0, out + q * out_stride);

/* out (n, >= c) with row stride out_stride; lod NULL reads level 0; index NULL reads texture 0.
 * c <= 64. */
void trilinear_forward(const float *table, int64_t c, int64_t n_levels, const int64_t *offs,
                       const int64_t *hs, const int64_t *ws, const float *uv, const float *lod,
                       const int64_t *index, int64_t n, float *out, int64_t out_stride, int n_threads) {
    FOR_CHANNELS(c, FORWARD_LOOP)
}

/* One query's gradients: into gtab (the table's gradient), and d/du, d/dv, d/dlod when asked.
 * Each corner's row is added in its own loop (rows of a level narrower than 2 texels coincide,
 * so one loop over all four would alias); each loop is a few vector multiply-adds. */
static inline __attribute__((always_inline)) void backward_one(
    const float *table, int64_t C, int64_t n_levels, const int64_t *offs, const int64_t *hs,
    const int64_t *ws, float u, float v, float lod, int64_t b, const float *restrict g,
    float *restrict gtab, float *guv, float *glod) {
    int64_t lo, hi;
    float f;
    int inside;
    level_pair(lod, n_levels, &lo, &hi, &f, &inside);
    const int64_t lv[2] = {lo, hi};
    const float wl[2] = {1.0f - f, f};
    float du = 0.0f, dv = 0.0f, dl = 0.0f;
    /* Both reads of a single level (hi == lo, f = 0) would add nothing twice: read it once; its
     * lod derivative v_hi - v_lo is then 0. */
    const int n_reads = hi == lo ? 1 : 2;
    for (int s = 0; s < n_reads; ++s) {
        int64_t k = lv[s], h = hs[k], w = ws[k];
        Corners q = corners_of(u, v, h, w);
        const int64_t r[4] = {offs[k] + (b * h + q.y0) * w + q.x0, offs[k] + (b * h + q.y0) * w + q.x1,
                              offs[k] + (b * h + q.y1) * w + q.x0, offs[k] + (b * h + q.y1) * w + q.x1};
        const float a[4] = {(1.0f - q.tx) * (1.0f - q.ty) * wl[s], q.tx * (1.0f - q.ty) * wl[s],
                            (1.0f - q.tx) * q.ty * wl[s], q.tx * q.ty * wl[s]};
#if defined(__AVX512F__)
        if (C <= 16) { /* forward_one's vectors: the same operations per channel */
            const __mmask16 m = channel_mask(C);
            const __m512 gv = _mm512_maskz_loadu_ps(m, g);
            for (int i = 0; i < 4; ++i) {
                float *row = gtab + r[i] * C;
                _mm512_mask_storeu_ps(row, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, row),
                                                            _mm512_mul_ps(_mm512_set1_ps(a[i]), gv)));
            }
            if (!guv && !glod) continue;
            const __m512 tx = _mm512_set1_ps(q.tx), ty = _mm512_set1_ps(q.ty);
            const __m512 t00 = _mm512_maskz_loadu_ps(m, table + r[0] * C);
            const __m512 t01 = _mm512_maskz_loadu_ps(m, table + r[1] * C);
            const __m512 t10 = _mm512_maskz_loadu_ps(m, table + r[2] * C);
            const __m512 t11 = _mm512_maskz_loadu_ps(m, table + r[3] * C);
            const __m512 d0 = _mm512_sub_ps(t01, t00), d1 = _mm512_sub_ps(t11, t10);
            const __m512 top = _mm512_add_ps(t00, _mm512_mul_ps(d0, tx));
            const __m512 bottom = _mm512_add_ps(t10, _mm512_mul_ps(d1, tx));
            const __m512 dy = _mm512_sub_ps(bottom, top);
            const __m512 dx =
                _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.0f - q.ty), d0), _mm512_mul_ps(ty, d1));
            du += wl[s] * _mm512_reduce_add_ps(_mm512_mul_ps(gv, dx)) * (float)w;
            dv += wl[s] * _mm512_reduce_add_ps(_mm512_mul_ps(gv, dy)) * (float)h;
            const __m512 val = _mm512_add_ps(top, _mm512_mul_ps(dy, ty));
            const float sv = _mm512_reduce_add_ps(_mm512_mul_ps(gv, val));
            dl += s == 0 ? -sv : sv;
            continue;
        }
#endif
        for (int i = 0; i < 4; ++i) {
            float *restrict row = gtab + r[i] * C;
            for (int64_t ch = 0; ch < C; ++ch) row[ch] += a[i] * g[ch];
        }
        if (!guv && !glod) continue;
        const float *t00 = table + r[0] * C, *t01 = table + r[1] * C, *t10 = table + r[2] * C;
        const float *t11 = table + r[3] * C;
        float sx = 0.0f, sy = 0.0f, sv = 0.0f;
#pragma omp simd reduction(+ : sx, sy, sv)
        for (int64_t ch = 0; ch < C; ++ch) {
            float gc = g[ch];
            float top = t00[ch] + (t01[ch] - t00[ch]) * q.tx;
            float bottom = t10[ch] + (t11[ch] - t10[ch]) * q.tx;
            sx += gc * ((1.0f - q.ty) * (t01[ch] - t00[ch]) + q.ty * (t11[ch] - t10[ch]));
            sy += gc * (bottom - top);
            sv += gc * (top + (bottom - top) * q.ty);
        }
        du += wl[s] * sx * (float)w;
        dv += wl[s] * sy * (float)h;
        dl += s == 0 ? -sv : sv; /* d/dlod of lerp(v_lo, v_hi, f) = v_hi - v_lo */
    }
    if (guv) {
        guv[0] = du;
        guv[1] = dv;
    }
    if (glod) *glod = inside && n_reads == 2 ? dl : 0.0f;
}

#define BACKWARD_LOOP(C)                                                                         \
    for (int64_t q = q0; q < q1; ++q)                                                             \
        backward_one(table, C, n_levels, offs, hs, ws, uv[2 * q], uv[2 * q + 1], lod ? lod[q] : 0.0f, \
                     index ? index[q] : 0, grad_out + q * grad_stride, gtab, grad_uv ? grad_uv + 2 * q : 0, \
                     grad_lod ? grad_lod + q : 0);

/* grad_table (rows, c) is overwritten with the table's gradient; grad_uv (n, 2) and grad_lod (n,)
 * are written when not NULL. Each thread sums its share of queries into its own copy of the
 * table's gradient (no atomics), and the copies are added at the end. Returns 0, or 1 when the
 * copies could not be allocated. */
int trilinear_backward(const float *table, int64_t rows, int64_t c, int64_t n_levels, const int64_t *offs,
                       const int64_t *hs, const int64_t *ws, const float *uv, const float *lod,
                       const int64_t *index, int64_t n, const float *grad_out, int64_t grad_stride,
                       float *grad_table, float *grad_uv, float *grad_lod, int n_threads) {
    if (n_threads < 1) n_threads = 1;
    int64_t size = rows * c;
    float *copies = NULL;
    if (n_threads > 1) {
        copies = (float *)calloc((size_t)(n_threads - 1) * (size_t)size, sizeof(float));
        if (!copies) return 1;
    }
    memset(grad_table, 0, (size_t)size * sizeof(float));
#pragma omp parallel num_threads(n_threads)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        extern int omp_get_thread_num(void);
        extern int omp_get_num_threads(void);
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        float *gtab = t == 0 ? grad_table : copies + (int64_t)(t - 1) * size;
        int64_t q0 = n * t / nt, q1 = n * (t + 1) / nt;
        FOR_CHANNELS(c, BACKWARD_LOOP)
#pragma omp barrier
        for (int s = 1; s < nt; ++s) {
            const float *src = copies + (int64_t)(s - 1) * size;
#pragma omp for schedule(static)
            for (int64_t i = 0; i < size; ++i) grad_table[i] += src[i];
        }
    }
    free(copies);
    return 0;
}
