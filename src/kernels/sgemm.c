/* sgemm.c - the blocked GEMM drivers (packed B with A packed on the fly, packed A
 * with B packed on the fly), their task split over the thread pool, the per-thread
 * packing buffers, K = 0 and empty shapes, and the run-time dispatch to the per-ISA
 * microkernels. */
#include "kernels/sgemm.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#else
#define _mm_prefetch(p, h) ((void)(p))
#define _MM_HINT_T0 0
#endif

#include "core/bigalloc.h"
#include "core/error.h"
#include "core/tlsbuf.h"
#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* Cache blocking: the microkernel streams a kc x KN_SGEMM_PANEL slice of B and a
 * kc x mr micro-panel of A, both from L2; A is packed an mc x kc block at a time
 * (A_BLOCK_FLOATS, a third of the 2 MiB L2, so that the block, the B panel in use
 * and the next one fit).  A task is one (mc rows, nc columns) block of C, all of K:
 * tasks never share an element of C.  With prepacked B a task is one block of rows
 * and, unless threads need more tasks, all columns: its A is packed once per k
 * block and B streams through panel by panel (each tile fetching the next panel),
 * so a bound on nc would only pack A again (capping it at 1024 measured 0-6% slower
 * at N 2304..4096).  With prepacked A a task is all rows of a block of columns
 * (its B, B_BLOCK_FLOATS, packed once per k block, then swept by blocks of rows),
 * so that neither driver packs anything twice.  K is cut into equal blocks of at
 * most KC (rounded to 8), so no block is a sliver; the row and column blocks
 * follow from the k block.  KC 1024 against 512 (mc 168 against 336, the same L2
 * footprint), judged against an FMA probe run between the calls in one process:
 * +5% at 1024^3, +10..15% on 128 x 3072 x 768, 197 x 3072 x 768, 3136 x 64 x 576
 * and 784 x 128 x 1152 (one pass over C instead of two, half the tile prologues
 * and epilogues), 197 x 768 x 3072 unchanged.  A block of 1 MiB instead of 688 KiB
 * was no better. */
#ifndef KN_SGEMM_KC
#define KN_SGEMM_KC 1024
#endif
enum {
    KC = KN_SGEMM_KC,
    A_BLOCK_FLOATS = 336 * 512,   /* packed-B driver: mc x kc of packed A, in L2 */
    B_BLOCK_FLOATS = 512 * 512,   /* packed-A driver: kc x nc of packed B, in L2 */
    PANEL = KN_SGEMM_PANEL
};

static void *aligned_floats(size_t n)
{
    if (n > SIZE_MAX / sizeof(float) - 64) return NULL;
    return kn_big_alloc(n * sizeof(float)); /* huge pages for big packed weights; free() releases */
}


static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* This thread's packing buffer of at least n floats (core/tlsbuf.c: grown, never
 * shrunk, freed when the thread exits), or NULL. */
static float *thread_buffer(size_t n)
{
    return n > SIZE_MAX / sizeof(float) ? NULL : kn_thread_buffer(KN_TLS_SGEMM, n * sizeof(float));
}

/* ---- packing ---- */

/* Pack rows [k0, k0+kc) x cols [j0, j0+nc) of B (or, with trans_b, of B^T given
 * as N x K) into panels of PANEL columns (zero padded), panel p at dst + p*pstride,
 * row k of a panel at + k*PANEL.  Plain B is read row by row (one sequential
 * stream, each row scattered to the panels); B^T panel by panel. */
static void pack_b_panels(float *dst, size_t pstride, const float *B, size_t ldb, int trans_b,
                          size_t k0, size_t kc, size_t j0, size_t nc)
{
    if (!trans_b) {
        for (size_t k = 0; k < kc; k++) {
            const float *src = B + (k0 + k) * ldb + j0;
            float *d = dst + k * PANEL;
            for (size_t jp = 0; jp < nc; jp += PANEL, d += pstride) {
                size_t nj = min_sz(nc - jp, PANEL);
                if (k + 2 < kc) { /* rows are far apart: fetch two rows ahead */
                    _mm_prefetch((const char *)(src + 2 * ldb + jp), _MM_HINT_T0);
                    _mm_prefetch((const char *)(src + 2 * ldb + jp + 16), _MM_HINT_T0);
                }
                if (nj == PANEL) {
                    memcpy(d, src + jp, PANEL * sizeof(float));
                } else {
                    memcpy(d, src + jp, nj * sizeof(float));
                    memset(d + nj, 0, (PANEL - nj) * sizeof(float));
                }
            }
        }
        return;
    }
    for (size_t jp = 0; jp < nc; jp += PANEL) {
        size_t nj = min_sz(nc - jp, PANEL), jb = j0 + jp;
        float *d = dst + jp / PANEL * pstride;
        for (size_t k = 0; k < kc; k++, d += PANEL) {
            size_t j = 0;
            for (; j < nj; j++) d[j] = B[(jb + j) * ldb + k0 + k];
            for (; j < PANEL; j++) d[j] = 0.0f;
        }
    }
}

size_t kn_sgemm_packed_b_floats(size_t K, size_t N)
{
    size_t npanels = (N + PANEL - 1) / PANEL, panel = K * PANEL;
    if (K && panel / K != PANEL) return 0;
    if (npanels && panel > SIZE_MAX / sizeof(float) / 2 / npanels) return 0;
    return panel * npanels;
}

void kn_sgemm_pack_b_into(kn_packed_b *pb, float *data, size_t K, size_t N, const float *B,
                          size_t ldb, int trans_b)
{
    pb->K = K;
    pb->N = N;
    pb->npanels = (N + PANEL - 1) / PANEL;
    pb->data = data;
    pack_b_panels(data, K * PANEL, B, ldb, trans_b, 0, K, 0, N);
}

kn_packed_b *kn_sgemm_pack_b(size_t K, size_t N, const float *B, size_t ldb, int trans_b)
{
    if (K && N && ldb < (trans_b ? K : N)) return NULL;
    size_t n = kn_sgemm_packed_b_floats(K, N);
    if (K && N && n == 0) return NULL;
    kn_packed_b *pb = calloc(1, sizeof *pb);
    float *data = aligned_floats(n);
    if (!pb || !data) {
        free(pb);
        free(data);
        return NULL;
    }
    kn_sgemm_pack_b_into(pb, data, K, N, B, ldb, trans_b);
    return pb;
}

void kn_packed_b_free(kn_packed_b *pb)
{
    if (!pb) return;
    free(pb->data);
    free(pb);
}

/* Pack rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into micro-panels of mr rows,
 * k-major (dst[k*mr + i]), zero-padding the last panel to mr rows.  Reads follow
 * A's rows (sequential); the strided writes land in one L1-resident micro-panel.
 * The kernel's own panel packer (an in-register transpose) does the plain case. */
static void pack_a(float *dst, const float *A, size_t lda, int trans_a, size_t i0, size_t mc,
                   size_t k0, size_t kc, const kn_sgemm_kernel *kr)
{
    size_t mr = (size_t)kr->mr;
    for (size_t ip = 0; ip < mc; ip += mr, dst += mr * kc) {
        size_t rows = mc - ip < mr ? mc - ip : mr;
        if (!trans_a && kr->pack_panel) {
            kr->pack_panel(dst, A + (i0 + ip) * lda + k0, lda, rows, kc);
            continue;
        }
        if (!trans_a) {
            for (size_t i = 0; i < rows; i++) {
                const float *src = A + (i0 + ip + i) * lda + k0;
                for (size_t k = 0; k < kc; k++) dst[k * mr + i] = src[k];
            }
        } else {
            for (size_t k = 0; k < kc; k++) {
                const float *src = A + (k0 + k) * lda + i0 + ip;
                for (size_t i = 0; i < rows; i++) dst[k * mr + i] = src[i];
            }
        }
        if (rows < mr)
            for (size_t k = 0; k < kc; k++)
                for (size_t i = rows; i < mr; i++) dst[k * mr + i] = 0.0f;
    }
}

static const kn_sgemm_kernel *kernel_for(kn_isa isa)
{
    isa = kn_cpu_isa_cap(isa);
    const kn_sgemm_kernel *k = NULL;
    if (isa >= KN_ISA_AVX512) k = kn_sgemm_kernel_avx512();
    if (!k && isa >= KN_ISA_AVX2) k = kn_sgemm_kernel_avx2();
    if (!k) k = kn_sgemm_kernel_generic();
    return k;
}

kn_packed_a *kn_sgemm_pack_a_isa(kn_isa isa, int trans_a, size_t M, size_t K, const float *A,
                                 size_t lda)
{
    if (M && K && lda < (trans_a ? M : K)) return NULL;
    const kn_sgemm_kernel *kr = kernel_for(isa);
    kn_packed_a *pa = calloc(1, sizeof *pa);
    if (!pa) return NULL;
    pa->M = M;
    pa->K = K;
    pa->isa = kn_cpu_isa_cap(isa);
    pa->mr = kr->mr;
    size_t panels = (M + (size_t)kr->mr - 1) / (size_t)kr->mr, panel = K * (size_t)kr->mr;
    if (K && panel / K != (size_t)kr->mr) goto fail;
    if (panels && panel > SIZE_MAX / sizeof(float) / 2 / panels) goto fail;
    pa->data = aligned_floats(panel * panels);
    if (!pa->data) goto fail;
    pack_a(pa->data, A, lda, trans_a, 0, M, 0, K, kr);
    return pa;
fail:
    free(pa);
    return NULL;
}

kn_packed_a *kn_sgemm_pack_a(size_t M, size_t K, const float *A, size_t lda)
{
    return kn_sgemm_pack_a_isa(kn_cpu_isa(), 0, M, K, A, lda);
}

void kn_packed_a_free(kn_packed_a *pa)
{
    if (!pa) return;
    free(pa->data);
    free(pa);
}

/* ---- epilogue ---- */

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
    if (ep && ep->row_bias) x += ep->row_bias[i];
    if (ep && ep->residual) x += ep->residual[i * ep->ldr + j];
    if (e->clamp) {
        x = x < e->lo ? e->lo : x;
        x = x > e->hi ? e->hi : x;
    }
    return x;
}

/* The activation that runs over stored tiles (the GELUs), or NULL. */
static kn_vm_rows_fn tile_act_for(const kn_gemm_epilogue *ep)
{
    if (!ep) return NULL;
    if (ep->act == KN_GEMM_ACT_GELU) return kn_vmath()->gelu_erf_rows;
    if (ep->act == KN_GEMM_ACT_GELU_TANH) return kn_vmath()->gelu_tanh_rows;
    return NULL;
}

/* K = 0: C = epilogue(0). */
static void run_k0(size_t M, size_t N, float *C, size_t ldc, const kn_gemm_epilogue *ep,
                   const kn_ukr_epi *e)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) C[i * ldc + j] = apply_tail(0.0f, ep, e, i, j);
    kn_vm_rows_fn act = tile_act_for(ep);
    if (act) act(C, ldc, M, N);
}

/* ---- the blocked driver ---- */

/* One GEMM call: where A and B come from (prepacked or raw) and how C is split. */
typedef struct gemm_plan {
    const kn_sgemm_kernel *kr;
    size_t M, N, K;
    const kn_packed_a *pa; /* or raw A: */
    const float *A;
    size_t lda;
    int trans_a;
    const kn_packed_b *pb; /* or raw B (K x N): */
    const float *B;
    size_t ldb;
    float *C;
    size_t ldc;
    const kn_gemm_epilogue *ep;
    int onto_c;       /* C already holds the residual */
    kn_ukr_epi e;     /* alpha and activation; first/last/bias/res set per tile */
    kn_vm_rows_fn tile_act; /* a GELU over each finished tile, or NULL */
    size_t kc;        /* k block */
    size_t mt, nt;    /* task size: mt a multiple of mr, nt of PANEL */
    size_t mtasks, ntasks;
    atomic_int nomem;
} gemm_plan;

/* Operand panels for one k block: A micro-panel p at a + p*astride, B panel q at
 * b + q*bstride, both already offset to the block's first k. */
typedef struct kblock {
    const float *a, *b;
    size_t astride, bstride, kc;
} kblock;

/* The next B panel (kc rows of PANEL floats, 2 * kc lines), fetched into L2 while
 * the tiles of the current one run, each tile a share: the first tile of a panel
 * otherwise waits on memory for every row (big prepacked weights are seldom in
 * cache).  Measured in alternating calls of one process: +1..16% on 64..1024-row
 * GEMMs.  Only for B blocks above STREAMED_B_BYTES: attention's small per-head B is
 * packed just before, so already in cache (with the fetch it first measured 6-7%
 * slower, on a recheck 1-2%, within the noise). */
enum { STREAMED_B_BYTES = 512 * 1024 };

static void next_panel_share(kn_ukr_epi *e, const float *next, size_t kc, size_t tile,
                             size_t ntiles)
{
    size_t lines = next ? kc * PANEL / 16 : 0, share = (lines + ntiles - 1) / ntiles;
    size_t first = tile * share;
    e->pf = next ? next + first * 16 : NULL;
    e->pf_lines = first < lines ? min_sz(share, lines - first) : 0;
}

/* Tiles of rows [i0, i0+mc) x cols [j0, j0+nc) for one k block; i0 is a multiple
 * of mr and j0 of PANEL, the block's panels are numbered from them. */
static void run_tiles(const gemm_plan *p, const kblock *kb, size_t i0, size_t mc, size_t j0,
                      size_t nc, kn_ukr_epi e)
{
    const kn_sgemm_kernel *kr = p->kr;
    const kn_gemm_epilogue *ep = p->ep;
    size_t mr = (size_t)kr->mr, ntiles = (mc + mr - 1) / mr;
    int streamed = kb->kc * round_up(nc, PANEL) * sizeof(float) > STREAMED_B_BYTES;
    for (size_t jj = 0; jj < nc; jj += (size_t)kr->nr) {
        const float *b = kb->b + jj / PANEL * kb->bstride + jj % PANEL;
        size_t jn = jj + (size_t)kr->nr;
        const float *next = streamed && jn < nc && jn % PANEL == 0
                                ? kb->b + jn / PANEL * kb->bstride : NULL;
        int n = (int)min_sz(nc - jj, (size_t)kr->nr);
        size_t j = j0 + jj;
        e.bias = (e.last && ep && ep->bias) ? ep->bias + j : NULL;
        for (size_t ip = 0; ip < mc; ip += mr) {
            size_t i = i0 + ip;
            next_panel_share(&e, next, kb->kc, ip / mr, ntiles);
            int m = (int)min_sz(mc - ip, mr);
            e.row_bias = (e.last && ep && ep->row_bias) ? ep->row_bias + i : NULL;
            e.res = (e.last && ep && ep->residual) ? ep->residual + i * ep->ldr + j : NULL;
            float *c = p->C + i * p->ldc + j;
            kr->ukr(kb->kc, kb->a + ip / mr * kb->astride, b, c, p->ldc, m, n, &e);
            if (e.last && p->tile_act) /* the tile is in L1 */
                p->tile_act(c, p->ldc, (size_t)m, (size_t)n);
        }
    }
}

/* Rows of A packed per k block of kc (a multiple of mr, at least mr). */
static size_t a_block_rows(size_t kc, size_t mr)
{
    size_t rows = A_BLOCK_FLOATS / kc / mr * mr;
    return rows < mr ? mr : rows;
}

/* Columns of B packed per k block of kc by the packed-A driver (whole panels). */
static size_t b_block_cols(size_t kc)
{
    size_t cols = B_BLOCK_FLOATS / kc / PANEL * PANEL;
    return cols < PANEL ? PANEL : cols;
}

/* The k block size: K in ceil(K / KC) near-equal blocks, a multiple of 8. */
static size_t k_block(size_t K)
{
    size_t nblocks = (K + KC - 1) / KC;
    return min_sz(round_up((K + nblocks - 1) / nblocks, 8), KC);
}

/* Panel stride of B packed on the fly: one cache line more than the panel, so
 * that the panels a row of B is scattered to do not all map to one L1 set (kc *
 * PANEL floats is often a multiple of 4 KiB). */
static size_t b_panel_stride(size_t kc) { return kc * PANEL + 16; }

/* Floats of packing buffer one task needs. */
static size_t task_buffer_floats(const gemm_plan *p)
{
    size_t kc = min_sz(p->K, p->kc), n = 0;
    if (!p->pa) n += p->mt * kc;
    if (!p->pb) n += b_panel_stride(kc) * (round_up(p->nt, PANEL) / PANEL);
    return n;
}

/* C block [i0, i0+mc) x [j0, j0+nc) over all of K, packing what is not prepacked,
 * swept by blocks of a_block_rows rows. */
static void run_task(gemm_plan *p, size_t i0, size_t mc, size_t j0, size_t nc)
{
    size_t need = task_buffer_floats(p);
    float *buf = need ? thread_buffer(need) : NULL;
    if (need && !buf) {
        atomic_store(&p->nomem, 1);
        return;
    }
    size_t K = p->K, mr = (size_t)p->kr->mr, mblock = a_block_rows(p->kc, mr);
    float *bbuf = p->pa ? buf : buf + p->mt * min_sz(K, p->kc);
    for (size_t k0 = 0; k0 < K; k0 += p->kc) {
        kblock kb;
        kb.kc = min_sz(K - k0, p->kc);
        if (p->pa) {
            kb.astride = K * mr;
            kb.a = p->pa->data + i0 / mr * kb.astride + k0 * mr;
        } else {
            pack_a(buf, p->A, p->lda, p->trans_a, i0, mc, k0, kb.kc, p->kr);
            kb.astride = kb.kc * mr;
            kb.a = buf;
        }
        if (p->pb) {
            kb.bstride = K * PANEL;
            kb.b = p->pb->data + j0 / PANEL * kb.bstride + k0 * PANEL;
        } else {
            kb.bstride = b_panel_stride(kb.kc);
            pack_b_panels(bbuf, kb.bstride, p->B, p->ldb, 0, k0, kb.kc, j0, nc);
            kb.b = bbuf;
        }
        kn_ukr_epi e = p->e;
        e.first = k0 == 0 && !p->onto_c;
        e.last = k0 + kb.kc == K;
        for (size_t ib = 0; ib < mc; ib += mblock) {
            kblock sub = kb;
            sub.a = kb.a + ib / mr * kb.astride;
            run_tiles(p, &sub, i0 + ib, min_sz(mc - ib, mblock), j0, nc, e);
        }
    }
}

static void task_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    gemm_plan *p = ctx;
    (void)thread_index;
    for (int64_t t = begin; t < end; t++) {
        size_t im = (size_t)t / p->ntasks, jn = (size_t)t % p->ntasks;
        size_t i0 = im * p->mt, j0 = jn * p->nt;
        run_task(p, i0, min_sz(p->M - i0, p->mt), j0, min_sz(p->N - j0, p->nt));
    }
    kn_cpu_clear_upper(); /* the microkernels leave wide registers dirty */
}

/* A GEMM too small for the split below to give every thread a task (MobileNetV2's
 * 1x1 projections at 14x14: 96 x 196 x 576 ran on one thread of two) still gets
 * one task per thread, cut along M (its halves are whole micro-panels and the
 * packing of B, done once per task, is the cheaper thing to repeat) or, with a
 * single micro-panel of rows, along N. */
static void split_below_minimum(gemm_plan *p, int threads)
{
    size_t mr = (size_t)p->kr->mr, want = threads > 1 ? (size_t)threads : 1;
    if (p->mtasks * p->ntasks >= want)
        return;
    size_t panels_m = (p->M + mr - 1) / mr, panels_n = (p->N + PANEL - 1) / PANEL;
    if (panels_m >= want)
        p->mt = (panels_m + want - 1) / want * mr;
    else if (panels_n >= want)
        p->nt = (panels_n + want - 1) / want * PANEL;
    p->mtasks = (p->M + p->mt - 1) / p->mt;
    p->ntasks = (p->N + p->nt - 1) / p->nt;
}

/* Task sizes: the cache blocks, then, with several threads, halved (rows no lower
 * than 4 micro-panels) until there are about 4 tasks per thread, splitting first
 * the dimension whose split packs nothing twice (M when B is prepacked, N when A
 * is). */
static void plan_tasks(gemm_plan *p, int threads)
{
    size_t mr = (size_t)p->kr->mr;
    size_t mt_min = 4 * mr, nt_min = 4 * PANEL;
    p->kc = k_block(p->K);
    size_t mmax = p->pa ? round_up(p->M, mr) : a_block_rows(p->kc, mr);
    p->mt = min_sz(round_up(p->M, mr), mmax);
    p->nt = p->pa ? min_sz(round_up(p->N, PANEL), b_block_cols(p->kc)) : round_up(p->N, PANEL);
    for (;;) {
        p->mtasks = (p->M + p->mt - 1) / p->mt;
        p->ntasks = (p->N + p->nt - 1) / p->nt;
        if (threads <= 1 || p->mtasks * p->ntasks >= 4 * (size_t)threads) break;
        int can_m = p->mt > mt_min, can_n = p->nt >= 2 * nt_min;
        int split_m = p->pb ? can_m : (can_m && !can_n);
        if (split_m) { /* down to mt_min, not past it: ViT's 197 x 768 x 3072 has a
                        * 168-row block, whose halves of 84 must still split once
                        * rather than cut N (A packed again per task; +7% at 2 threads) */
            size_t half = round_up(p->mt / 2, mr);
            p->mt = half < mt_min ? mt_min : half;
        } else if (can_n)
            p->nt = round_up(p->nt / 2, PANEL);
        else
            break;
    }
    split_below_minimum(p, threads);
}

/* Shared checks (ld_short: the raw operand's row stride is too short) and trivial
 * cases; returns 1 when the call is complete (*rc set). */
static int gemm_trivial(gemm_plan *p, const kn_gemm_epilogue *ep, int ld_short, int *rc)
{
    epi_defaults(ep, &p->e);
    *rc = KN_OK;
    if (p->M == 0 || p->N == 0) return 1;
    if (p->ldc < p->N || (p->K && ld_short) || (ep && ep->residual && ep->ldr < p->N)) {
        *rc = KN_ERR_ARG;
        return 1;
    }
    if (p->K == 0) {
        run_k0(p->M, p->N, p->C, p->ldc, ep, &p->e);
        return 1;
    }
    return 0;
}

static int gemm_execute(gemm_plan *p, struct kn_threadpool *pool, const kn_gemm_epilogue *ep)
{
    /* residual == C: C already holds the residual, so accumulate onto it. */
    kn_gemm_epilogue ep_local;
    p->onto_c = ep && ep->residual == p->C && ep->ldr == p->ldc;
    if (p->onto_c) {
        ep_local = *ep;
        ep_local.residual = NULL;
        ep = &ep_local;
    }
    p->ep = ep;
    p->tile_act = tile_act_for(ep);
    atomic_init(&p->nomem, 0);
    plan_tasks(p, kn_threadpool_size(pool));
    kn_parallel_for(pool, (int64_t)(p->mtasks * p->ntasks), 1, task_range, p);
    return atomic_load(&p->nomem) ? KN_ERR_NOMEM : KN_OK;
}

int kn_sgemm_run_pool_isa(struct kn_threadpool *pool, kn_isa isa, int trans_a, size_t M,
                          size_t N, size_t K, const float *A, size_t lda,
                          const kn_packed_b *pb, float *C, size_t ldc,
                          const kn_gemm_epilogue *ep)
{
    if (!pb || pb->K != K || pb->N != N) return KN_ERR_ARG;
    gemm_plan p;
    memset(&p, 0, sizeof p);
    p.kr = kernel_for(isa);
    p.M = M, p.N = N, p.K = K;
    p.A = A, p.lda = lda, p.trans_a = trans_a, p.pb = pb;
    p.C = C, p.ldc = ldc;
    int rc;
    if (gemm_trivial(&p, ep, lda < (trans_a ? M : K), &rc)) return rc;
    return gemm_execute(&p, pool, ep);
}

int kn_sgemm_run_pool(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                      const float *A, size_t lda, const kn_packed_b *pb, float *C, size_t ldc,
                      const kn_gemm_epilogue *ep)
{
    return kn_sgemm_run_pool_isa(pool, kn_cpu_isa(), 0, M, N, K, A, lda, pb, C, ldc, ep);
}

int kn_sgemm_run_isa(kn_isa isa, int trans_a, size_t M, size_t N, size_t K, const float *A,
                     size_t lda, const kn_packed_b *pb, float *C, size_t ldc,
                     const kn_gemm_epilogue *ep)
{
    return kn_sgemm_run_pool_isa(NULL, isa, trans_a, M, N, K, A, lda, pb, C, ldc, ep);
}

int kn_sgemm_run(size_t M, size_t N, size_t K, const float *A, size_t lda,
                 const kn_packed_b *pb, float *C, size_t ldc, const kn_gemm_epilogue *ep)
{
    return kn_sgemm_run_pool_isa(NULL, kn_cpu_isa(), 0, M, N, K, A, lda, pb, C, ldc, ep);
}

int kn_sgemm_run_pa(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                    const kn_packed_a *pa, const float *B, size_t ldb, float *C, size_t ldc,
                    const kn_gemm_epilogue *ep)
{
    if (!pa || pa->M != M || pa->K != K) return KN_ERR_ARG;
    gemm_plan p;
    memset(&p, 0, sizeof p);
    p.kr = kernel_for(pa->isa);
    if (p.kr->mr != pa->mr) return KN_ERR_ARG;
    p.M = M, p.N = N, p.K = K;
    p.pa = pa, p.B = B, p.ldb = ldb;
    p.C = C, p.ldc = ldc;
    int rc;
    if (gemm_trivial(&p, ep, ldb < N, &rc)) return rc;
    return gemm_execute(&p, pool, ep);
}

int kn_sgemm_run_pa_pb(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                       const kn_packed_a *pa, const kn_packed_b *pb, float *C, size_t ldc,
                       const kn_gemm_epilogue *ep)
{
    if (!pa || !pb || pa->M != M || pa->K != K || pb->K != K || pb->N != N) return KN_ERR_ARG;
    gemm_plan p;
    memset(&p, 0, sizeof p);
    p.kr = kernel_for(pa->isa);
    if (p.kr->mr != pa->mr) return KN_ERR_ARG;
    p.M = M, p.N = N, p.K = K;
    p.pa = pa, p.pb = pb;
    p.C = C, p.ldc = ldc;
    int rc;
    if (gemm_trivial(&p, ep, 0, &rc)) return rc;
    return gemm_execute(&p, pool, ep);
}
