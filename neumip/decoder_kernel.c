/* The paper's decoder head (neumip/decoder.py, YUVLogDecoder.head) in one pass per query on the
 * CPU: rgb = max(expm1(M t[0:3]) * (0.1 + sigmoid(t[3:6])), 0), M the YUV -> RGB matrix, t the
 * MLP's output; without the shadow mask rgb = max(expm1(M t[0:3]), 0). Training's head is the
 * same without the clamp, and its backward pass is here too (yuv_log_head_backward).
 *
 * Why: torch runs it as six passes over (N, 3) column views of the (N, 6) output (a matrix
 * product, expm1, sigmoid, an add, a product, a clamp), strided and so not vectorised: about 20
 * ms of a 1080p frame (issue 22). Here each query's 6 numbers are read once and its 3 written once,
 * 16 queries at a time in AVX-512 (without AVX-512 the kernel declines and torch's head runs).
 *
 * exp: Cephes' expf (range reduction by ln 2 in two parts, a degree-6 polynomial; about 1 ulp)
 * scaled by 2^n with VSCALEFPS (so overflow gives inf and underflow denormals or 0, as torch);
 * expm1: a Taylor polynomial below |x| = 0.5 (where exp(x) - 1 would cancel), exp(x) - 1 above;
 * sigmoid: 1 / (1 + exp(-x)). NaN stays NaN. */
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>

static inline __m512 exp16(__m512 x) {
    __m512 c = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(c, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(c, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
    __m512 e = _mm512_scalef_ps(p, n);
    return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x); /* NaN stays NaN */
}

/* expm1(x) given ex = e^x: a Taylor polynomial below |x| = 0.5 (where ex - 1 would cancel), ex - 1
 * above. */
static inline __m512 expm1_with_exp16(__m512 x, __m512 ex) {
    __m512 t = _mm512_set1_ps(1.0f / 40320.0f);
    static const float k[] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f};
    for (int i = 0; i < 6; ++i) t = _mm512_add_ps(_mm512_mul_ps(t, x), _mm512_set1_ps(k[i]));
    __m512 small = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(t, x), x), x);
    __m512 big = _mm512_sub_ps(ex, _mm512_set1_ps(1.0f));
    __mmask16 near0 = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0.5f), _CMP_LT_OQ);
    return _mm512_mask_mov_ps(big, near0, small);
}

static inline __m512 expm1_16(__m512 x) { return expm1_with_exp16(x, exp16(x)); }

static inline __m512 sigmoid16(__m512 x) {
    return _mm512_div_ps(_mm512_set1_ps(1.0f),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* Up to 16 queries (lanes in k): their outputs at t (row stride t_stride floats) -> rgb at o (3 a
 * row). m: M row-major (3 x 3). clamp: eval mode's max(rgb, 0) (training returns rgb as is). */
static inline void head16(const float *t, int t_stride, __mmask16 k, const float *m, int shadow_mask,
                          int clamp, float *o) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i in_idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(t_stride));
    const __m512i out_idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(3));
    __m512 in[6];
    for (int c = 0; c < (shadow_mask ? 6 : 3); ++c)
        in[c] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, in_idx, t + c, 4);
    for (int c = 0; c < 3; ++c) {
        __m512 l = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(m[3 * c]), in[0]),
                                               _mm512_mul_ps(_mm512_set1_ps(m[3 * c + 1]), in[1])),
                                 _mm512_mul_ps(_mm512_set1_ps(m[3 * c + 2]), in[2]));
        __m512 e = expm1_16(l);
        if (shadow_mask) e = _mm512_mul_ps(e, _mm512_add_ps(_mm512_set1_ps(0.1f), sigmoid16(in[3 + c])));
        /* max(e, 0) keeping NaN (as torch's clamp_min): zero only where e < 0 */
        if (clamp)
            e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_LT_OQ),
                                   _mm512_setzero_ps());
        _mm512_mask_i32scatter_ps(o + c, k, out_idx, e, 4);
    }
}

/* The training head's backward for up to 16 queries: their outputs at t and the loss's gradient
 * g at the rgb (3 a row) -> the gradient at t (as t's rows, width 6 or 3 floats a row). With
 * l = M t[0:3], e = expm1(l), s = sigmoid(t[3:6]), rgb = e (0.1 + s):
 * d rgb_c / d l_c = e^l_c (0.1 + s_c), d rgb_c / d t[3 + c] = e_c s_c (1 - s_c), and the
 * gradient at t[0:3] is M^T times the one at l. */
static inline void head16_backward(const float *t, int width, const float *g, __mmask16 k, const float *m,
                                   int shadow_mask, float *gt) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i t_idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(width));
    const __m512i g_idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(3));
    __m512 in[6], gl[3];
    for (int c = 0; c < width; ++c) in[c] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, t_idx, t + c, 4);
    for (int c = 0; c < 3; ++c) {
        __m512 gc = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, g_idx, g + c, 4);
        __m512 l = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(m[3 * c]), in[0]),
                                               _mm512_mul_ps(_mm512_set1_ps(m[3 * c + 1]), in[1])),
                                 _mm512_mul_ps(_mm512_set1_ps(m[3 * c + 2]), in[2]));
        __m512 ex = exp16(l); /* the derivative e^l: not e + 1, which cancels where e^l is small */
        __m512 e = expm1_with_exp16(l, ex);
        __m512 de = _mm512_mul_ps(gc, ex);
        if (shadow_mask) {
            /* 1 - s as sigmoid(-x), not 1 - s, which cancels where s is near 1 */
            __m512 s = sigmoid16(in[3 + c]);
            __m512 s_rest = sigmoid16(_mm512_sub_ps(_mm512_setzero_ps(), in[3 + c]));
            de = _mm512_mul_ps(de, _mm512_add_ps(_mm512_set1_ps(0.1f), s));
            __m512 ds = _mm512_mul_ps(_mm512_mul_ps(gc, e), _mm512_mul_ps(s, s_rest));
            _mm512_mask_i32scatter_ps(gt + 3 + c, k, t_idx, ds, 4);
        }
        gl[c] = de;
    }
    for (int j = 0; j < 3; ++j) {
        __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(m[j]), gl[0]),
                                               _mm512_mul_ps(_mm512_set1_ps(m[3 + j]), gl[1])),
                                 _mm512_mul_ps(_mm512_set1_ps(m[6 + j]), gl[2]));
        _mm512_mask_i32scatter_ps(gt + j, k, t_idx, v, 4);
    }
}

static inline __mmask16 lanes_left(int64_t n, int64_t i0) {
    const int64_t left = n - i0;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* t (n, 6) contiguous (n, 3 without the shadow mask); m: M row-major (3 x 3); rgb (n, 3)
 * contiguous; clamp: eval mode's max(rgb, 0), 0 for training's head. Returns 0. */
int yuv_log_head(const float *t, int64_t n, const float *m, int shadow_mask, int clamp, float *rgb,
                 int n_threads) {
    const int width = shadow_mask ? 6 : 3;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < (n + 15) / 16; ++b)
        head16(t + 16 * b * width, width, lanes_left(n, 16 * b), m, shadow_mask, clamp, rgb + 16 * b * 3);
    return 0;
}

/* The training head's backward: t as yuv_log_head's, g (n, 3) contiguous, the gradient at rgb ->
 * grad_t (n, 6) contiguous (n, 3 without the shadow mask). Returns 0. */
int yuv_log_head_backward(const float *t, int64_t n, const float *g, const float *m, int shadow_mask,
                          float *grad_t, int n_threads) {
    const int width = shadow_mask ? 6 : 3;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < (n + 15) / 16; ++b)
        head16_backward(t + 16 * b * width, width, g + 16 * b * 3, lanes_left(n, 16 * b), m, shadow_mask,
                        grad_t + 16 * b * width);
    return 0;
}

int yuv_log_head_supported(void) { return 1; }

#else /* no AVX-512: the caller keeps torch's head */

int yuv_log_head(const float *t, int64_t n, const float *m, int shadow_mask, int clamp, float *rgb,
                 int n_threads) {
    (void)t; (void)n; (void)m; (void)shadow_mask; (void)clamp; (void)rgb; (void)n_threads;
    return 1;
}

int yuv_log_head_backward(const float *t, int64_t n, const float *g, const float *m, int shadow_mask,
                          float *grad_t, int n_threads) {
    (void)t; (void)n; (void)g; (void)m; (void)shadow_mask; (void)grad_t; (void)n_threads;
    return 1;
}

int yuv_log_head_supported(void) { return 0; }

#endif
