/* sgemm.c - the blocked GEMM driver (B packing, A packing, cache blocking, K = 0
 * and empty shapes) and the run-time dispatch to the per-ISA microkernels. */
#include "kernels/sgemm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Cache blocking: a kc x KN_SGEMM_PANEL slice of B stays in L1 while the microkernel
 * sweeps an mc x kc block of packed A (L2); nc bounds the B block reused across
 * the A blocks of one (jc, pc) step. */
#ifndef KN_SGEMM_KC
#define KN_SGEMM_KC 256
#endif
#ifndef KN_SGEMM_MC
#define KN_SGEMM_MC 168
#endif
#ifndef KN_SGEMM_NC
#define KN_SGEMM_NC 1024
#endif
enum { KC = KN_SGEMM_KC, MC = KN_SGEMM_MC, NC = KN_SGEMM_NC };

static void *aligned_floats(size_t n)
{
    if (n > SIZE_MAX / sizeof(float) - 64) return NULL;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

kn_packed_b *kn_sgemm_pack_b(size_t K, size_t N, const float *B, size_t ldb, int trans_b)
{
    if (K && N && ldb < (trans_b ? K : N)) return NULL;
    kn_packed_b *pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    pb->K = K;
    pb->N = N;
    pb->npanels = (N + KN_SGEMM_PANEL - 1) / KN_SGEMM_PANEL;
    size_t panel = K * KN_SGEMM_PANEL;
    if (K && panel / K != KN_SGEMM_PANEL) goto fail;
    if (pb->npanels && panel > SIZE_MAX / sizeof(float) / 2 / pb->npanels) goto fail;
    pb->data = aligned_floats(panel * pb->npanels);
    if (!pb->data) goto fail;
    for (size_t p = 0; p < pb->npanels; p++) {
        float *dst = pb->data + p * panel;
        size_t j0 = p * KN_SGEMM_PANEL;
        size_t nj = N - j0 < KN_SGEMM_PANEL ? N - j0 : KN_SGEMM_PANEL;
        for (size_t k = 0; k < K; k++, dst += KN_SGEMM_PANEL) {
            size_t j = 0;
            if (!trans_b)
                for (; j < nj; j++) dst[j] = B[k * ldb + j0 + j];
            else
                for (; j < nj; j++) dst[j] = B[(j0 + j) * ldb + k];
            for (; j < KN_SGEMM_PANEL; j++) dst[j] = 0.0f;
        }
    }
    return pb;
fail:
    free(pb);
    return NULL;
}

void kn_packed_b_free(kn_packed_b *pb)
{
    if (!pb) return;
    free(pb->data);
    free(pb);
}

/* Pack rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into micro-panels of mr rows,
 * k-major (dst[k*mr + i]), zero-padding the last panel to mr rows.  Reads follow
 * A's rows (sequential); the strided writes land in one L1-resident micro-panel. */
static void pack_a(float *dst, const float *A, size_t lda, int trans_a, size_t i0, size_t mc,
                   size_t k0, size_t kc, int mr)
{
    for (size_t ip = 0; ip < mc; ip += (size_t)mr, dst += (size_t)mr * kc) {
        size_t rows = mc - ip < (size_t)mr ? mc - ip : (size_t)mr;
        if (!trans_a) {
            for (size_t i = 0; i < rows; i++) {
                const float *src = A + (i0 + ip + i) * lda + k0;
                for (size_t k = 0; k < kc; k++) dst[k * (size_t)mr + i] = src[k];
            }
        } else {
            for (size_t k = 0; k < kc; k++) {
                const float *src = A + (k0 + k) * lda + i0 + ip;
                for (size_t i = 0; i < rows; i++) dst[k * (size_t)mr + i] = src[i];
            }
        }
        if (rows < (size_t)mr)
            for (size_t k = 0; k < kc; k++)
                for (size_t i = rows; i < (size_t)mr; i++) dst[k * (size_t)mr + i] = 0.0f;
    }
}

static void epi_defaults(const kn_gemm_epilogue *ep, kn_ukr_epi *e)
{
    memset(e, 0, sizeof *e);
    e->alpha = 1.0f;
    if (!ep) return;
    if (ep->has_alpha) e->alpha = ep->alpha;
    e->ldr = ep->ldr;
    if (ep->act == KN_GEMM_ACT_RELU) {
        e->clamp = 1;
        e->lo = 0.0f;
        e->hi = INFINITY;
    } else if (ep->act == KN_GEMM_ACT_CLIP) {
        e->clamp = 1;
        e->lo = ep->clip_min;
        e->hi = ep->clip_max;
    }
}

static float apply_tail(float x, const kn_gemm_epilogue *ep, const kn_ukr_epi *e, size_t i,
                        size_t j)
{
    if (ep && ep->bias) x += ep->bias[j];
    if (ep && ep->residual) x += ep->residual[i * ep->ldr + j];
    if (e->clamp) {
        x = x < e->lo ? e->lo : x;
        x = x > e->hi ? e->hi : x;
    }
    return x;
}

/* K = 0: C = epilogue(0). */
static void run_k0(size_t M, size_t N, float *C, size_t ldc, const kn_gemm_epilogue *ep,
                   const kn_ukr_epi *e)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) C[i * ldc + j] = apply_tail(0.0f, ep, e, i, j);
}

static const kn_sgemm_kernel *kernel_for(kn_isa isa)
{
    kn_isa top = kn_cpu_isa_supported();
    if (isa > top) isa = top;
    const kn_sgemm_kernel *k = NULL;
    if (isa >= KN_ISA_AVX512) k = kn_sgemm_kernel_avx512();
    if (!k && isa >= KN_ISA_AVX2) k = kn_sgemm_kernel_avx2();
    if (!k) k = kn_sgemm_kernel_generic();
    return k;
}

/* One (jc, pc, ic) block: packed A (mc x kc) times every panel of [j0, j0+nc). */
static void run_block(const kn_sgemm_kernel *kr, const float *ap, const kn_packed_b *pb,
                      size_t i0, size_t mc, size_t j0, size_t nc, size_t k0, size_t kc,
                      float *C, size_t ldc, const kn_gemm_epilogue *ep, kn_ukr_epi e)
{
    size_t K = pb->K;
    for (size_t j = j0; j < j0 + nc; j += (size_t)kr->nr) {
        size_t panel = j / KN_SGEMM_PANEL, jo = j % KN_SGEMM_PANEL;
        const float *b = pb->data + panel * K * KN_SGEMM_PANEL + k0 * KN_SGEMM_PANEL + jo;
        size_t nleft = j0 + nc - j;
        int n = nleft < (size_t)kr->nr ? (int)nleft : kr->nr;
        e.bias = (e.last && ep && ep->bias) ? ep->bias + j : NULL;
        for (size_t ip = 0; ip < mc; ip += (size_t)kr->mr) {
            size_t i = i0 + ip;
            size_t mleft = mc - ip;
            int m = mleft < (size_t)kr->mr ? (int)mleft : kr->mr;
            e.res = (e.last && ep && ep->residual) ? ep->residual + i * ep->ldr + j : NULL;
            kr->ukr(kc, ap + ip * kc, b, C + i * ldc + j, ldc, m, n, &e);
        }
    }
}

int kn_sgemm_run_isa(kn_isa isa, int trans_a, size_t M, size_t N, size_t K, const float *A,
                     size_t lda, const kn_packed_b *pb, float *C, size_t ldc,
                     const kn_gemm_epilogue *ep)
{
    if (!pb || pb->K != K || pb->N != N) return KN_ERR_ARG;
    kn_ukr_epi e;
    epi_defaults(ep, &e);
    if (M == 0 || N == 0) return KN_OK;
    if (ldc < N || (K && lda < (trans_a ? M : K)) || (ep && ep->residual && ep->ldr < N))
        return KN_ERR_ARG;
    if (K == 0) {
        run_k0(M, N, C, ldc, ep, &e);
        return KN_OK;
    }
    /* residual == C: C already holds the residual, so accumulate onto it. */
    int onto_c = ep && ep->residual == C && ep->ldr == ldc;
    kn_gemm_epilogue ep_local;
    if (onto_c) {
        ep_local = *ep;
        ep_local.residual = NULL;
        ep = &ep_local;
    }
    const kn_sgemm_kernel *kr = kernel_for(isa);
    size_t mr = (size_t)kr->mr;
    size_t mc_max = M < MC ? (M + mr - 1) / mr * mr : (size_t)MC / mr * mr;
    size_t kc_max = K < KC ? K : KC;
    float *ap = aligned_floats(mc_max * kc_max);
    if (!ap) return KN_ERR_NOMEM;
    for (size_t j0 = 0; j0 < N; j0 += NC) {
        size_t nc = N - j0 < NC ? N - j0 : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            e.first = k0 == 0 && !onto_c;
            e.last = k0 + kc == K;
            for (size_t i0 = 0; i0 < M; i0 += mc_max) {
                size_t mc = M - i0 < mc_max ? M - i0 : mc_max;
                pack_a(ap, A, lda, trans_a, i0, mc, k0, kc, kr->mr);
                run_block(kr, ap, pb, i0, mc, j0, nc, k0, kc, C, ldc, ep, e);
            }
        }
    }
    free(ap);
    return KN_OK;
}

int kn_sgemm_run(size_t M, size_t N, size_t K, const float *A, size_t lda,
                 const kn_packed_b *pb, float *C, size_t ldc, const kn_gemm_epilogue *ep)
{
    return kn_sgemm_run_isa(kn_cpu_isa(), 0, M, N, K, A, lda, pb, C, ldc, ep);
}
