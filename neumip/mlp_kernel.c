/* A whole bias-free ReLU MLP (tiny-cuda-nn's layout: the first layer's constant-1 columns folded
 * into a bias) in bfloat16 on the CPU, every layer of a tile of rows in one pass: the native twin
 * of neumip/mlp_backends.py's TorchMLP inference path under bf16 autocast. Built on first use by
 * neumip/mlp_native.py; plain C + AVX512-BF16 intrinsics + OpenMP, no Python or torch headers.
 *
 * Why: oneDNN runs each layer over the whole chunk, so every layer's activations make a round
 * trip through memory, and the thin layers (the decoder's 6 outputs, the offset network's 9
 * inputs and 1 output) run at a fraction of the GEMM rate. Here a tile of R rows goes through
 * every layer with its activations in registers and a few hundred bytes of L1.
 *
 * Numbers: as oneDNN's bf16 linear: inputs, weights and each hidden layer's output (after the
 * ReLU) rounded to bf16 (round to nearest even), products summed in fp32. The bias and the last
 * layer's output stay fp32 (oneDNN rounds its output to bf16 too: this is the nearer to fp32).
 *
 * Weights are packed by mlp_native.py: layer l, pair p of input columns, output column j at
 * uint32 [p][j] = (W[j][2p], W[j][2p + 1]) in bf16, j padded to a multiple of 16 and the input
 * to a multiple of 2 with zeros, so that one 64-byte load holds 16 outputs' weights for two inputs
 * (what VDPBF16PS multiplies with a broadcast pair of activations). */
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>

/* Most 16-column blocks of a layer's output (width <= 64) and input columns (<= 64). */
#define MAX_BLOCKS 4
#define MAX_IN 64
#define ACT_STRIDE (MAX_IN / 2) /* uint32 pairs per row of a tile's activation buffer */

/* One layer over R rows: act (R rows x kp pairs of bf16, row stride ACT_STRIDE) times the packed
 * weights w (kp x JB blocks of 16 outputs) plus bias (JB x 16 floats, or NULL), into acc. */
#define LAYER(R, JB)                                                                             \
    static inline __attribute__((always_inline)) void layer_##R##_##JB(                          \
        const uint32_t *act, int64_t kp, const __m512i *w, const float *bias, __m512 acc[R][JB]) { \
        for (int jb = 0; jb < JB; ++jb) {                                                         \
            __m512 b0 = bias ? _mm512_loadu_ps(bias + 16 * jb) : _mm512_setzero_ps();             \
            for (int r = 0; r < R; ++r) acc[r][jb] = b0;                                          \
        }                                                                                         \
        for (int64_t p = 0; p < kp; ++p) {                                                        \
            __m512i wv[JB];                                                                       \
            for (int jb = 0; jb < JB; ++jb) wv[jb] = _mm512_loadu_si512(w + p * JB + jb);          \
            for (int r = 0; r < R; ++r) {                                                         \
                __m512i a = _mm512_set1_epi32((int)act[r * ACT_STRIDE + p]);                      \
                for (int jb = 0; jb < JB; ++jb)                                                   \
                    acc[r][jb] = _mm512_dpbf16_ps(acc[r][jb], (__m512bh)a, (__m512bh)wv[jb]);     \
            }                                                                                     \
        }                                                                                         \
    }

/* acc (R x JB blocks) -> ReLU -> bf16 into act (row stride ACT_STRIDE pairs). */
#define STORE_HIDDEN(R, JB)                                                                      \
    static inline __attribute__((always_inline)) void store_hidden_##R##_##JB(                   \
        __m512 acc[R][JB], uint32_t *act) {                                                      \
        const __m512 zero = _mm512_setzero_ps();                                                  \
        for (int r = 0; r < R; ++r) {                                                             \
            uint16_t *row = (uint16_t *)(act + r * ACT_STRIDE);                                   \
            int jb = 0;                                                                           \
            for (; jb + 1 < JB; jb += 2) {                                                        \
                __m512bh h = _mm512_cvtne2ps_pbh(_mm512_max_ps(acc[r][jb + 1], zero),              \
                                                 _mm512_max_ps(acc[r][jb], zero));                \
                _mm512_storeu_si512(row + 16 * jb, (__m512i)h);                                    \
            }                                                                                     \
            if (jb < JB) {                                                                        \
                __m256bh h = _mm512_cvtneps_pbh(_mm512_max_ps(acc[r][jb], zero));                 \
                _mm256_storeu_si256((__m256i *)(row + 16 * jb), (__m256i)h);                       \
            }                                                                                     \
        }                                                                                         \
    }

/* One tile of R rows through every layer. x rows of n_in floats (row stride x_stride); rows past
 * `rows` (a last, partial tile) read as zeros and are not written. */
#define TILE(R, JB)                                                                              \
    STORE_HIDDEN(R, JB)                                                                          \
    static void tile_##R##_##JB(const float *x, int64_t x_stride, int64_t n_in, int64_t rows,    \
                                const __m512i *w, const float *bias, int64_t hidden_layers,     \
                                int64_t n_out, float *out, int64_t out_stride) {                \
        uint32_t act[R * ACT_STRIDE] __attribute__((aligned(64)));                               \
        __m512 acc[R][JB];                                                                        \
        const __mmask16 lo = (__mmask16)(n_in >= 16 ? 0xFFFF : (1u << n_in) - 1);                 \
        const __mmask16 hi = (__mmask16)(n_in >= 32 ? 0xFFFF : n_in <= 16 ? 0 : (1u << (n_in - 16)) - 1); \
        const __mmask16 hi2 = (__mmask16)(n_in >= 48 ? 0xFFFF : n_in <= 32 ? 0 : (1u << (n_in - 32)) - 1); \
        const __mmask16 hi3 = (__mmask16)(n_in >= 64 ? 0xFFFF : n_in <= 48 ? 0 : (1u << (n_in - 48)) - 1); \
        for (int r = 0; r < R; ++r) {                                                             \
            uint16_t *row = (uint16_t *)(act + r * ACT_STRIDE);                                   \
            if (r >= rows) {                                                                      \
                memset(row, 0, sizeof(uint32_t) * ACT_STRIDE);                                    \
                continue;                                                                         \
            }                                                                                     \
            const float *xr = x + r * x_stride;                                                   \
            __m512 a = _mm512_maskz_loadu_ps(lo, xr), b = _mm512_maskz_loadu_ps(hi, xr + 16);      \
            _mm512_storeu_si512(row, (__m512i)_mm512_cvtne2ps_pbh(b, a));                          \
            if (n_in > 32) {                                                                      \
                a = _mm512_maskz_loadu_ps(hi2, xr + 32);                                          \
                b = _mm512_maskz_loadu_ps(hi3, xr + 48);                                          \
                _mm512_storeu_si512(row + 32, (__m512i)_mm512_cvtne2ps_pbh(b, a));                 \
            }                                                                                     \
        }                                                                                         \
        const int64_t kp0 = (n_in + 1) / 2, kph = 16 * JB / 2;                                    \
        layer_##R##_##JB(act, kp0, w, bias, acc);                                                 \
        w += kp0 * JB;                                                                            \
        for (int64_t l = 1; l < hidden_layers; ++l) {                                             \
            store_hidden_##R##_##JB(acc, act);                                                    \
            layer_##R##_##JB(act, kph, w, 0, acc);                                                \
            w += kph * JB;                                                                        \
        }                                                                                         \
        store_hidden_##R##_##JB(acc, act);                                                        \
        __m512 o[R][1];                                                                           \
        layer_##R##_1(act, kph, w, 0, o);                                                         \
        const __mmask16 om = (__mmask16)((1u << n_out) - 1);                                      \
        for (int r = 0; r < R && r < rows; ++r) _mm512_mask_storeu_ps(out + r * out_stride, om, o[r][0]); \
    }

/* Rows per tile: R x JB accumulators and JB weight vectors within the 32 zmm registers; each
 * tile's last layer has one block (n_out <= 16). */
LAYER(24, 1)
LAYER(12, 2)
LAYER(12, 1)
LAYER(6, 3)
LAYER(6, 4)
LAYER(6, 1)
TILE(24, 1)
TILE(12, 2)
TILE(6, 3)
TILE(6, 4)

#define RUN(R, JB)                                                                               \
    _Pragma("omp parallel for num_threads(n_threads) schedule(static)")                           \
    for (int64_t t = 0; t < (n + R - 1) / R; ++t)                                                 \
        tile_##R##_##JB(x + t * R * x_stride, x_stride, n_in, n - t * R, w, bias, hidden_layers,  \
                        n_out, out + t * R * out_stride, out_stride);

/* out (n, >= n_out) with row stride out_stride = the MLP of x (n, >= n_in) with row stride
 * x_stride. width: 16, 32, 48 or 64; n_in <= 64; n_out <= 16; hidden_layers >= 1. Returns 0, or 1
 * where the shapes are not served. */
int mlp_bf16_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                     const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                     int64_t out_stride, int n_threads) {
    if (width % 16 || width < 16 || width > 16 * MAX_BLOCKS || n_in < 1 || n_in > MAX_IN || n_out < 1 ||
        n_out > 16 || hidden_layers < 1)
        return 1;
    const __m512i *w = (const __m512i *)packed;
    switch (width / 16) {
    case 1: RUN(24, 1) break;
    case 2: RUN(12, 2) break;
    case 3: RUN(6, 3) break;
    default: RUN(6, 4) break;
    }
    return 0;
}

int mlp_bf16_supported(void) { return 1; }

#else /* no AVX512-BF16 on the machine this was compiled for: the caller keeps oneDNN */

int mlp_bf16_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                     const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                     int64_t out_stride, int n_threads) {
    (void)x; (void)n; (void)x_stride; (void)n_in; (void)packed; (void)bias; (void)width;
    (void)hidden_layers; (void)n_out; (void)out; (void)out_stride; (void)n_threads;
    return 1;
}

int mlp_bf16_supported(void) { return 0; }

#endif
