/* sgemm_generic.c - the portable C microkernel (4 x 32 tile) and the plain
 * triple-loop reference kn_sgemm_ref (double accumulation). */
#include <string.h>

#include "kernels/sgemm.h"

#include <math.h>

enum { GMR = 4, GNR = KN_SGEMM_PANEL };

static float finish(float x, const kn_ukr_epi *e, float old, int i, int j)
{
    x *= e->alpha;
    if (!e->first) x += old;
    if (e->last) {
        if (e->bias) x += e->bias[j];
        if (e->row_bias) x += e->row_bias[i];
        if (e->res) x += e->res[(size_t)i * e->ldr + (size_t)j];
        if (e->clamp) {
            x = x < e->lo ? e->lo : x;
            x = x > e->hi ? e->hi : x;
        }
    }
    return x;
}

static void ukr_generic(size_t kc, const float *a, const float *b, float *c, size_t ldc, int m,
                        int n, const kn_ukr_epi *e)
{
    float acc[GMR][GNR];
    memset(acc, 0, sizeof acc);
    for (size_t k = 0; k < kc; k++, a += GMR, b += KN_SGEMM_PANEL)
        for (int i = 0; i < GMR; i++)
            for (int j = 0; j < GNR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < m; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) row[j] = finish(acc[i][j], e, e->first ? 0.0f : row[j], i, j);
    }
}

static const kn_sgemm_kernel k_generic = {GMR, GNR, ukr_generic, NULL};

const kn_sgemm_kernel *kn_sgemm_kernel_generic(void) { return &k_generic; }

void kn_sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K, const float *A,
                  size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
                  const kn_gemm_epilogue *ep)
{
    double alpha = (ep && ep->has_alpha) ? ep->alpha : 1.0;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            float x = (float)(alpha * s);
            if (ep && ep->bias) x += ep->bias[j];
            if (ep && ep->row_bias) x += ep->row_bias[i];
            if (ep && ep->residual) x += ep->residual[i * ep->ldr + j];
            if (ep && ep->act == KN_GEMM_ACT_RELU) x = x < 0.0f ? 0.0f : x;
            if (ep && ep->act == KN_GEMM_ACT_CLIP) {
                x = x < ep->clip_min ? ep->clip_min : x;
                x = x > ep->clip_max ? ep->clip_max : x;
            }
            if (ep && ep->act == KN_GEMM_ACT_GELU)
                x = (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752)));
            if (ep && ep->act == KN_GEMM_ACT_GELU_TANH) {
                double u = 0.79788456080286535588 * (x + 0.044715 * (double)x * x * x);
                x = (float)(0.5 * x * (1.0 + tanh(u)));
            }
            C[i * ldc + j] = x;
        }
    }
}
