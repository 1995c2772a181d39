/* conv_transpose.c - float32 NCHW 2-D transposed convolution: per batch item and
 * group, the GEMM cols[(co, ky, kx), input pixels] = W^T x X (weights packed
 * transposed), then every output channel folds its kh * kw column rows back into
 * its plane (col2im), channels split over the thread pool. */
#include "kernels/conv_kernels.h"

#include <stdlib.h>

#include "core/error.h"
#include "exec/threadpool.h"
#include "kernels/sgemm.h"

/* Column buffers beyond this many floats go to the reference loops. */
#define CONVT_MAX_COLS ((int64_t)1 << 25)

static int64_t col_rows(const kn_conv2d_args *a)
{
    return a->m / a->group * a->g.kh * a->g.kw;
}

size_t kn_convt2d_scratch_floats(const kn_conv2d_args *a)
{
    int64_t R = col_rows(a), Q = a->g.ih * a->g.iw;
    if (R < 1 || Q < 1 || R > CONVT_MAX_COLS / Q)
        return SIZE_MAX;
    return (size_t)(R * Q);
}

kn_packed_a *kn_convt2d_pack_group(kn_isa isa, const kn_conv2d_args *a, int64_t gi)
{
    int64_t R = col_rows(a), cg = a->g.channels;
    return kn_sgemm_pack_a_isa(isa, 1, (size_t)R, (size_t)cg, a->w + gi * cg * R, (size_t)R);
}

typedef struct fold_job {
    const kn_conv2d_args *a;
    const float *col;
    float *y;       /* the group's first output channel */
    int64_t co0;    /* its index among all output channels */
} fold_job;

static void fold_channels(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const fold_job *j = ctx;
    const kn_conv2d_geom *g = &j->a->g;
    int64_t out_plane = g->oh * g->ow, rows = g->kh * g->kw * g->ih * g->iw;
    (void)thread_index;
    for (int64_t co = begin; co < end; co++) {
        float *y = j->y + co * out_plane, bias = j->a->bias ? j->a->bias[j->co0 + co] : 0.0f;
        for (int64_t i = 0; i < out_plane; i++)
            y[i] = bias;
        kn_col2im_plane(g, j->col + co * rows, y);
    }
}

int kn_convt2d_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                   float *scratch)
{
    const kn_conv2d_geom *g = &a->g;
    int64_t R = col_rows(a), Q = g->ih * g->iw, cg = g->channels, mg = a->m / a->group;
    int rc = KN_OK;
    for (int64_t n = 0; n < a->batch && !rc; n++) {
        for (int64_t gi = 0; gi < a->group && !rc; gi++) {
            kn_packed_a *own = a->pa ? NULL : kn_convt2d_pack_group(isa, a, gi);
            const kn_packed_a *pa = a->pa ? a->pa[gi] : own;
            const float *xg = a->x + (n * a->group + gi) * cg * Q;
            rc = pa ? kn_sgemm_run_pa(pool, (size_t)R, (size_t)Q, (size_t)cg, pa, xg, (size_t)Q,
                                      scratch, (size_t)Q, NULL)
                    : KN_ERR_NOMEM;
            kn_packed_a_free(own);
            fold_job j = {a, scratch, a->y + (n * a->m + gi * mg) * g->oh * g->ow, gi * mg};
            if (!rc)
                kn_parallel_for(pool, mg, 1, fold_channels, &j);
        }
    }
    return rc;
}
