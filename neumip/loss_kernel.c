/* NeuMIP's training loss (neumip/train.py, neumip_loss) and its gradient in one pass on the CPU:
 * over n predictions p and targets y (flat float32),
 *   loss = mean((log1p(max(p, -0.1)) - log1p(y))^2) + w mean(|p - y|),
 *   dloss/dp = (2 d / (1 + max(p, -0.1)) [p >= -0.1] + w sign(p - y)) / n, d the log difference,
 * as torch's autograd of that formula (clamp_min passes the gradient where p >= -0.1, abs's
 * derivative at 0 is 0).
 *
 * Why: torch runs it as a dozen passes over the batch forwards and as many backwards, about 1.5 ms
 * of a training step of 65,536 queries (issue 22); here each element is read once and its gradient
 * written once, 16 at a time in AVX-512 (without AVX-512 the kernel declines and torch's loss runs).
 *
 * log: Cephes' logf (the mantissa in [sqrt(1/2), sqrt(2)), a degree-8 polynomial, ln 2 in two
 * parts; about 1 ulp), log1p(x) = log(u) x / (u - 1) with u = 1 + x (Goldberg's correction, exact
 * to about 1 ulp where u rounds), x where u == 1. Sums per 16-lane block in double, the blocks
 * split over threads in a fixed order: the same loss for any thread count. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>

/* log(x) for x > 0 finite; the caller masks the rest. */
static inline __m512 log16(__m512 x) {
    __m512 e = _mm512_getexp_ps(x);
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356237f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
    __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
    __m512 z = _mm512_mul_ps(f, f);
    static const float c[] = {-1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f, 1.4249322787E-1f,
                              -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    __m512 y = _mm512_set1_ps(7.0376836292E-2f);
    for (int i = 0; i < 8; ++i) y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(c[i]));
    y = _mm512_mul_ps(_mm512_mul_ps(y, f), z);
    y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
    y = _mm512_fmadd_ps(z, _mm512_set1_ps(-0.5f), y);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), _mm512_add_ps(f, y));
}

/* log1p(x): NaN below -1 and for NaN, -inf at -1, inf at inf. */
static inline __m512 log1p16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 u = _mm512_add_ps(one, x);
    __mmask16 regular = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ) &
                        _mm512_cmp_ps_mask(u, _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
    __m512 safe = _mm512_mask_mov_ps(one, regular, u);
    __m512 r = _mm512_mul_ps(log16(safe), _mm512_div_ps(x, _mm512_sub_ps(safe, one)));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(safe, one, _CMP_EQ_OQ), x); /* u rounds to 1 */
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_EQ_OQ),
                           _mm512_set1_ps(-INFINITY));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(u, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), u);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_NGE_UQ),
                              _mm512_set1_ps(NAN)); /* below -1 or NaN */
}

static inline __m512 sign16(__m512 x) {
    const __m512 zero = _mm512_setzero_ps();
    __m512 s = _mm512_mask_mov_ps(zero, _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), _mm512_set1_ps(1.0f));
    s = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), _mm512_set1_ps(-1.0f));
    return _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x); /* NaN stays NaN */
}

/* p, y (n,) float32; grad (n,) float32 written with dloss/dp; *loss the loss. Returns 0, or 2
 * when the per-block sums could not be allocated. */
int neumip_loss_forward(const float *p, const float *y, int64_t n, float l1_weight, float *grad, double *loss,
                        int n_threads) {
    const int64_t blocks = (n + 15) / 16;
    double *sums = (double *)malloc((size_t)(blocks > 0 ? blocks : 1) * 2 * sizeof(double));
    if (!sums) return 2;
    const float scale = 1.0f / (float)n;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t i0 = 16 * b, left = n - i0;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 pv = _mm512_maskz_loadu_ps(k, p + i0), yv = _mm512_maskz_loadu_ps(k, y + i0);
        __m512 a = _mm512_max_ps(pv, _mm512_set1_ps(-0.1f));
        a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(pv, pv, _CMP_UNORD_Q), pv); /* NaN stays NaN */
        __m512 d = _mm512_sub_ps(log1p16(a), log1p16(yv));
        __m512 r = _mm512_sub_ps(pv, yv);
        d = _mm512_maskz_mov_ps(k, d);
        r = _mm512_maskz_mov_ps(k, r);
        /* clamp_min's gradient passes where p >= -0.1 (torch's mask) */
        __mmask16 pass = _mm512_cmp_ps_mask(pv, _mm512_set1_ps(-0.1f), _CMP_GE_OQ);
        __m512 gmse = _mm512_maskz_div_ps(pass, _mm512_mul_ps(_mm512_set1_ps(2.0f), d),
                                          _mm512_add_ps(_mm512_set1_ps(1.0f), a));
        gmse = _mm512_mask_mov_ps(gmse, _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q), d);
        __m512 g = _mm512_mul_ps(_mm512_fmadd_ps(_mm512_set1_ps(l1_weight), sign16(r), gmse),
                                 _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(grad + i0, k, g);
        __m512d d_lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
        __m512d d_hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1));
        __m512d r_lo = _mm512_abs_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(r)));
        __m512d r_hi = _mm512_abs_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(r, 1)));
        sums[2 * b] = _mm512_reduce_add_pd(_mm512_fmadd_pd(d_lo, d_lo, _mm512_mul_pd(d_hi, d_hi)));
        sums[2 * b + 1] = _mm512_reduce_add_pd(_mm512_add_pd(r_lo, r_hi));
    }
    double sq = 0.0, ab = 0.0;
    for (int64_t b = 0; b < blocks; ++b) {
        sq += sums[2 * b];
        ab += sums[2 * b + 1];
    }
    free(sums);
    *loss = (sq + (double)l1_weight * ab) / (double)n;
    return 0;
}

int neumip_loss_supported(void) { return 1; }

#else /* no AVX-512: the caller keeps torch's loss */

int neumip_loss_forward(const float *p, const float *y, int64_t n, float l1_weight, float *grad, double *loss,
                        int n_threads) {
    (void)p; (void)y; (void)n; (void)l1_weight; (void)grad; (void)loss; (void)n_threads;
    return 1;
}

int neumip_loss_supported(void) { return 0; }

#endif
