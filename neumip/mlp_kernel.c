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

/* A row of act = x's n_in floats in bf16 (round to nearest even), zeros up to the next 32. */
static inline void row_to_act(const float *xr, int64_t n_in, uint32_t *act_row) {
    uint16_t *row = (uint16_t *)act_row;
    const __mmask16 m0 = (__mmask16)(n_in >= 16 ? 0xFFFF : (1u << n_in) - 1);
    const __mmask16 m1 = (__mmask16)(n_in >= 32 ? 0xFFFF : n_in <= 16 ? 0 : (1u << (n_in - 16)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(m0, xr), b = _mm512_maskz_loadu_ps(m1, xr + 16);
    _mm512_storeu_si512(row, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    if (n_in > 32) {
        const __mmask16 m2 = (__mmask16)(n_in >= 48 ? 0xFFFF : (1u << (n_in - 32)) - 1);
        const __mmask16 m3 = (__mmask16)(n_in >= 64 ? 0xFFFF : n_in <= 48 ? 0 : (1u << (n_in - 48)) - 1);
        a = _mm512_maskz_loadu_ps(m2, xr + 32);
        b = _mm512_maskz_loadu_ps(m3, xr + 48);
        _mm512_storeu_si512(row + 32, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
}

/* Every layer over R rows of act (bf16 inputs, consumed: the hidden layers are written back into
 * it); the first `rows` rows' n_out outputs go to out (row stride out_stride) in fp32. */
#define TILE(R, JB)                                                                              \
    STORE_HIDDEN(R, JB)                                                                          \
    static void tile_##R##_##JB(uint32_t *act, int64_t n_in, int64_t rows, const __m512i *w,     \
                                const float *bias, int64_t hidden_layers, int64_t n_out, float *out, \
                                int64_t out_stride) {                                            \
        __m512 acc[R][JB];                                                                        \
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

/* Rows of every tile: BLOCK_ROWS is a multiple of each. */
#define BLOCK_ROWS 24

/* Whether the kernel serves an MLP of these sizes. */
static int mlp_shape_served(int64_t n_in, int64_t width, int64_t hidden_layers, int64_t n_out) {
    return !(width % 16 || width < 16 || width > 16 * MAX_BLOCKS || n_in < 1 || n_in > MAX_IN || n_out < 1 ||
             n_out > 16 || hidden_layers < 1);
}

/* A block of up to BLOCK_ROWS rows of act (BLOCK_ROWS x ACT_STRIDE, consumed) through the MLP,
 * in tiles of the width's rows; the first `rows` rows' outputs to out. */
static void mlp_block(uint32_t *act, int64_t rows, int64_t n_in, const __m512i *w, const float *bias,
                      int64_t width, int64_t hidden_layers, int64_t n_out, float *out, int64_t out_stride) {
    const int64_t tile = width == 16 ? 24 : width == 32 ? 12 : 6;
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
        uint32_t *a = act + r0 * ACT_STRIDE;
        float *o = out + r0 * out_stride;
        switch (width / 16) {
        case 1: tile_24_1(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride); break;
        case 2: tile_12_2(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride); break;
        case 3: tile_6_3(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride); break;
        default: tile_6_4(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride); break;
        }
    }
}

/* out (n, >= n_out) with row stride out_stride = the MLP of x (n, >= n_in) with row stride
 * x_stride. width: 16, 32, 48 or 64; n_in <= 64; n_out <= 16; hidden_layers >= 1. Returns 0, or 1
 * where the shapes are not served. */
int mlp_bf16_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                     const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                     int64_t out_stride, int n_threads) {
    if (!mlp_shape_served(n_in, width, hidden_layers, n_out)) return 1;
    const __m512i *w = (const __m512i *)packed;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < (n + BLOCK_ROWS - 1) / BLOCK_ROWS; ++b) {
        uint32_t act[BLOCK_ROWS * ACT_STRIDE] __attribute__((aligned(64)));
        const int64_t r0 = b * BLOCK_ROWS, rows = n - r0 < BLOCK_ROWS ? n - r0 : BLOCK_ROWS;
        for (int64_t r = 0; r < BLOCK_ROWS; ++r) {
            if (r < rows) row_to_act(x + (r0 + r) * x_stride, n_in, act + r * ACT_STRIDE);
            else memset(act + r * ACT_STRIDE, 0, sizeof(uint32_t) * ACT_STRIDE);
        }
        mlp_block(act, rows, n_in, w, bias, width, hidden_layers, n_out, out + r0 * out_stride, out_stride);
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
