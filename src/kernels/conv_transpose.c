/* conv_transpose.c - float32 NCHW 2-D transposed convolution: per batch item,
 * group and band of input rows, the GEMM cols[(co, ky, kx), band pixels] = W^T x X
 * (weights packed transposed), then every output channel folds its kh * kw column
 * rows back into its plane (col2im), channels split over the thread pool.  Bands
 * keep the column buffer bounded whatever the image size. */
#include "kernels/conv_kernels.h"

#include <stdlib.h>

#include "core/error.h"
#include "exec/threadpool.h"
#include "kernels/sgemm.h"

/* Column buffer wanted (floats): bands of input rows are sized to fit it. */
#define CONVT_BAND_FLOATS ((int64_t)1 << 22)
/* Beyond this many floats for a single input row the reference loops run. */
#define CONVT_MAX_ROW_FLOATS ((int64_t)1 << 26)

static int64_t col_rows(const kn_conv2d_args *a)
{
    return a->m / a->group * a->g.kh * a->g.kw;
}

size_t kn_convt2d_scratch_floats(const kn_conv2d_args *a)
{
    int64_t R = col_rows(a), iw = a->g.iw, ih = a->g.ih;
    if (R < 1 || iw < 1 || ih < 1 || R > CONVT_MAX_ROW_FLOATS / iw)
        return SIZE_MAX;
    int64_t rows = CONVT_BAND_FLOATS / (R * iw);
    rows = rows < 1 ? 1 : rows > ih ? ih : rows;
    return (size_t)(R * iw * rows);
}

kn_packed_a *kn_convt2d_pack_group(kn_isa isa, const kn_conv2d_args *a, int64_t gi)
{
    int64_t R = col_rows(a), cg = a->g.channels;
    return kn_sgemm_pack_a_isa(isa, 1, (size_t)R, (size_t)cg, a->w + gi * cg * R, (size_t)R);
}

typedef struct fold_job {
    const kn_conv2d_args *a;
    const float *col;  /* NULL: set the planes to the bias */
    int64_t iy0, nrows; /* the band of input rows the columns hold */
    float *y;          /* the group's first output channel */
    int64_t co0;       /* its index among all output channels */
} fold_job;

static void fold_channels(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const fold_job *j = ctx;
    const kn_conv2d_geom *g = &j->a->g;
    int64_t out_plane = g->oh * g->ow, rows = g->kh * g->kw * j->nrows * g->iw;
    (void)thread_index;
    for (int64_t co = begin; co < end; co++) {
        float *y = j->y + co * out_plane;
        if (j->col) {
            kn_col2im_rows(g, j->col + co * rows, j->iy0, j->nrows, y);
        } else {
            float bias = j->a->bias ? j->a->bias[j->co0 + co] : 0.0f;
            for (int64_t i = 0; i < out_plane; i++)
                y[i] = bias;
        }
    }
}

/* One (batch item, group): bias, then the bands of band_rows input rows. */
static int run_group(struct kn_threadpool *pool, const kn_conv2d_args *a, const kn_packed_a *pa,
                     int64_t n, int64_t gi, int64_t band_rows, float *scratch)
{
    const kn_conv2d_geom *g = &a->g;
    int64_t R = col_rows(a), Q = g->ih * g->iw, cg = g->channels, mg = a->m / a->group;
    const float *xg = a->x + (n * a->group + gi) * cg * Q;
    fold_job j = {a, NULL, 0, 0, a->y + (n * a->m + gi * mg) * g->oh * g->ow, gi * mg};
    kn_parallel_for(pool, mg, 1, fold_channels, &j);
    for (int64_t r0 = 0; r0 < g->ih; r0 += band_rows) {
        int64_t nr = g->ih - r0 < band_rows ? g->ih - r0 : band_rows, np = nr * g->iw;
        int rc = kn_sgemm_run_pa(pool, (size_t)R, (size_t)np, (size_t)cg, pa, xg + r0 * g->iw,
                                 (size_t)Q, scratch, (size_t)np, NULL);
        if (rc)
            return rc;
        j.col = scratch;
        j.iy0 = r0;
        j.nrows = nr;
        kn_parallel_for(pool, mg, 1, fold_channels, &j);
    }
    return KN_OK;
}

int kn_convt2d_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                   float *scratch, size_t scratch_floats)
{
    int64_t row_floats = col_rows(a) * a->g.iw;
    int64_t band_rows = row_floats > 0 ? (int64_t)(scratch_floats / (size_t)row_floats) : 0;
    if (band_rows < 1)
        return KN_ERR_ARG;
    int rc = KN_OK;
    for (int64_t n = 0; n < a->batch && !rc; n++) {
        for (int64_t gi = 0; gi < a->group && !rc; gi++) {
            kn_packed_a *own = a->pa ? NULL : kn_convt2d_pack_group(isa, a, gi);
            const kn_packed_a *pa = a->pa ? a->pa[gi] : own;
            rc = pa ? run_group(pool, a, pa, n, gi, band_rows, scratch) : KN_ERR_NOMEM;
            kn_packed_a_free(own);
        }
    }
    return rc;
}
