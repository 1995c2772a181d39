/* test_onnx_reader.c - unit tests for the ONNX reader (src/formats): loading every
 * shared model and backend node test model, and hand-built protobuf byte strings
 * for the awkward cases: truncation at every offset, random byte flips, huge and
 * negative dims, raw_data size mismatches, cycles, deep nesting, external data
 * (good, missing, escaping the directory), function inlining, standalone
 * TensorProto decoding with packed and unpacked fields. */
#include "test.h"

#include "formats/onnx.h"
#include "formats/protobuf.h"
#include "formats/tensorproto.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The shared test data: $KILN_SHARED_DIR, else <repo>/../shared or
 * <repo>/../../shared (git worktrees), <repo> found from this file's path. */
static const char *shared_dir(void)
{
    static char dir[1024];
    if (dir[0])
        return dir;
    const char *env = getenv("KILN_SHARED_DIR");
    if (env && env[0]) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char repo[512];
    snprintf(repo, sizeof repo, "%s", __FILE__);
    for (int k = 0; k < 3; k++) { /* strip tests/unit/<file> */
        char *slash = strrchr(repo, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(repo, sizeof repo, ".");
    }
    const char *rel[2] = {"/../shared", "/../../shared"};
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%s%s", repo, rel[k]);
        if (!access(dir, R_OK))
            return dir;
    }
    snprintf(dir, sizeof dir, "/nonexistent");
    return dir;
}

/* shared_dir() + suffix in a rotating static buffer. */
static const char *shared_path(const char *suffix)
{
    static char bufs[4][4096];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s%s", shared_dir(), suffix);
    return b;
}

/* ---- a tiny protobuf writer for building test models ---- */

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static void pb_put(pbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    int k = 0;
    do {
        tmp[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[k] |= 0x80;
        k++;
    } while (v);
    pb_put(b, tmp, (size_t)k);
}

static void pb_tag(pbuf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_int(pbuf *b, int field, int64_t v) { pb_tag(b, field, 0); pb_varint(b, (uint64_t)v); }
static void pb_bytes(pbuf *b, int field, const void *d, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}
static void pb_str(pbuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
/* Embed sub as a message field and free it. */
static void pb_msg(pbuf *b, int field, pbuf *sub)
{
    pb_bytes(b, field, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}
static void pb_f32(pbuf *b, int field, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    pb_tag(b, field, 5);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_put(b, le, 4);
}

/* TensorProto with raw data. */
static pbuf tensor_raw(const char *name, int dtype, int rank, const int64_t *dims, const void *raw,
                       size_t nraw)
{
    pbuf t = {0};
    for (int i = 0; i < rank; i++)
        pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, raw, nraw);
    return t;
}

/* ValueInfoProto name: tensor(elem)[dims] (rank < 0: no shape). */
static pbuf value_info(const char *name, int elem, int rank, const int64_t *dims)
{
    pbuf shape = {0}, tt = {0}, tp = {0}, vi = {0};
    pb_int(&tt, 1, elem);
    if (rank >= 0) {
        for (int i = 0; i < rank; i++) {
            pbuf d = {0};
            pb_int(&d, 1, dims[i]);
            pb_msg(&shape, 1, &d);
        }
        pb_msg(&tt, 2, &shape);
    }
    pb_msg(&tp, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &tp);
    return vi;
}

/* NodeProto op(ins) -> outs; extra (attributes, already encoded as field 5) appended. */
static pbuf node(const char *op, const char *name, int nin, const char *const *ins, int nout,
                 const char *const *outs, pbuf *attrs, int nattr)
{
    pbuf n = {0};
    for (int i = 0; i < nin; i++)
        pb_str(&n, 1, ins[i]);
    for (int i = 0; i < nout; i++)
        pb_str(&n, 2, outs[i]);
    if (name)
        pb_str(&n, 3, name);
    pb_str(&n, 4, op);
    for (int i = 0; i < nattr; i++)
        pb_msg(&n, 5, &attrs[i]);
    return n;
}

static pbuf opset(const char *domain, int64_t version)
{
    pbuf o = {0};
    pb_str(&o, 1, domain);
    pb_int(&o, 2, version);
    return o;
}

/* ModelProto around a graph (consumed), ir_version 8, opset 17. */
static pbuf model(pbuf *graph)
{
    pbuf m = {0}, o = opset("", 17);
    pb_int(&m, 1, 8);
    pb_str(&m, 2, "test");
    pb_msg(&m, 7, graph);
    pb_msg(&m, 8, &o);
    return m;
}

/* The simplest loadable model: graph output is an initializer (no nodes, so no
 * operator needs to be registered). */
static pbuf graph_with_init(pbuf *init, const char *out_name, int elem)
{
    pbuf g = {0}, out = value_info(out_name, elem, -1, NULL);
    pb_str(&g, 2, "g");
    pb_msg(&g, 5, init);
    pb_msg(&g, 12, &out);
    return g;
}

/* With KILN_WRITE_SEEDS=DIR set, hand-built inputs are also written to DIR (the
 * fuzz seed corpus in tests/fuzz/seeds was made this way). */
static void save_seed(const char *name, const pbuf *b)
{
    const char *dir = getenv("KILN_WRITE_SEEDS");
    if (!dir || !dir[0])
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b->p, 1, b->n, f);
        fclose(f);
    }
}

static int load_bytes(const pbuf *b, kn_model **m, kn_error *err)
{
    *m = NULL;
    return kn_onnx_load_buffer(b->p, b->n, NULL, m, err);
}

/* ---- shared models ---- */

static void count_dir_models(const char *dir, bool nested, int *ok, int *unsup, int *bad)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4096];
        if (e->d_name[0] == '.')
            continue;
        if (nested)
            snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
        else if (strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".onnx"))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        else
            continue;
        if (access(path, R_OK))
            continue;
        kn_model *m = NULL;
        kn_error err = {0};
        int rc = kn_onnx_load_file(path, &m, &err);
        if (rc == KN_OK) {
            (*ok)++;
            kn_model_free(m);
        } else if (rc == KN_ERR_UNSUPPORTED) {
            (*unsup)++;
        } else {
            (*bad)++;
            fprintf(stderr, "load failed: %s: [%s] %s\n", path, kn_status_name(rc), err.msg);
        }
    }
    closedir(d);
}

static void test_shared_models(void)
{
    int ok = 0, unsup = 0, bad = 0;
    count_dir_models(shared_path("/models"), false, &ok, &unsup, &bad);
    printf("shared models: %d loaded, %d unsupported, %d failed\n", ok, unsup, bad);
    CHECK_EQ_INT(bad, 0);
    ok = unsup = bad = 0;
    count_dir_models(shared_path("/onnx-backend-tests/node"), true, &ok, &unsup, &bad);
    printf("node test models: %d loaded, %d unsupported, %d failed\n", ok, unsup, bad);
    CHECK_EQ_INT(bad, 0);
    ok = unsup = bad = 0;
    count_dir_models(shared_path("/onnx-backend-tests/simple"), true, &ok, &unsup, &bad);
    printf("simple test models: %d loaded, %d unsupported, %d failed\n", ok, unsup, bad);
    CHECK_EQ_INT(bad, 0);
}

/* Parse (no finalize) every node test model and compare a few counts with what
 * its test data implies: the number of input_K.pb files of data set 0 is at
 * most the number of graph inputs. */
static void test_shared_parse_only(void)
{
    DIR *d = opendir(shared_path("/onnx-backend-tests/node"));
    if (!d)
        return;
    struct dirent *e;
    int n = 0, bad = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/model.onnx", shared_path("/onnx-backend-tests/node"), e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        pbuf b = {0};
        uint8_t chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
            pb_put(&b, chunk, got);
        fclose(f);
        kn_model *m = NULL;
        kn_error err;
        int rc = kn_onnx_parse_buffer(b.p, b.n, NULL, true, &m, &err);
        if (rc == KN_OK) {
            n++;
            if (!m->graph || m->graph->n_outputs < 1)
                bad++;
            kn_model_free(m);
        } else if (rc != KN_ERR_UNSUPPORTED) {
            bad++;
            fprintf(stderr, "parse failed: %s: %s\n", path, err.msg);
        }
        free(b.p);
    }
    closedir(d);
    printf("node test models parsed: %d\n", n);
    CHECK_EQ_INT(bad, 0);
}

/* ---- hand-built models ---- */

/* A small model exercising most fields: initializers (raw and typed), an If with two
 * subgraphs, attributes of several kinds, value_info, a symbolic dim. */
static pbuf rich_model(void)
{
    pbuf g = {0};
    float w[4] = {1, 2, 3, 4};
    int64_t d4[1] = {4};
    pbuf init = tensor_raw("w", 1, 1, d4, w, sizeof w);
    pbuf cond = {0};
    pb_int(&cond, 2, 9);
    pb_str(&cond, 8, "c");
    pb_int(&cond, 5, 1); /* int32_data for bool, unpacked */
    /* then/else branches: Identity(w) -> y_then / Neg(w) -> y_else */
    pbuf branches[2];
    const char *outs[2] = {"y_then", "y_else"};
    const char *ops[2] = {"Identity", "Neg"};
    for (int k = 0; k < 2; k++) {
        pbuf sg = {0};
        const char *in[1] = {"w"};
        pbuf n = node(ops[k], NULL, 1, in, 1, &outs[k], NULL, 0);
        pbuf o = value_info(outs[k], 1, 1, d4);
        pb_msg(&sg, 1, &n);
        pb_str(&sg, 2, k ? "else" : "then");
        pb_msg(&sg, 12, &o);
        branches[k] = sg;
    }
    pbuf attrs[4] = {{0}};
    pb_str(&attrs[0], 1, "then_branch");
    pb_msg(&attrs[0], 6, &branches[0]);
    pb_int(&attrs[0], 20, 5);
    pb_str(&attrs[1], 1, "else_branch");
    pb_msg(&attrs[1], 6, &branches[1]); /* no type: inferred */
    pb_str(&attrs[2], 1, "some_ints");
    pbuf packed = {0};
    pb_varint(&packed, 3);
    pb_varint(&packed, (uint64_t)-1);
    pb_bytes(&attrs[2], 8, packed.p, packed.n);
    free(packed.p);
    pb_int(&attrs[2], 8, 7); /* one more, unpacked */
    pb_str(&attrs[3], 1, "alpha");
    pb_f32(&attrs[3], 2, 0.5f);
    const char *ifin[1] = {"c"};
    const char *ifout[1] = {"y"};
    pbuf ifn = node("If", "the_if", 1, ifin, 1, ifout, attrs, 4);
    pb_msg(&g, 1, &ifn);
    pb_str(&g, 2, "main");
    pb_msg(&g, 5, &init);
    pb_msg(&g, 5, &cond);
    int64_t dy[1] = {4};
    pbuf out = value_info("y", 1, 1, dy);
    pb_msg(&g, 12, &out);
    return model(&g);
}

static void test_rich_model_parse(void)
{
    pbuf b = rich_model();
    save_seed("rich.onnx", &b);
    kn_model *m = NULL;
    kn_error err;
    int rc = kn_onnx_parse_buffer(b.p, b.n, NULL, true, &m, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc == KN_OK) {
        const kn_graph *g = m->graph;
        CHECK(!strcmp(g->name, "main"));
        CHECK_EQ_INT(g->n_nodes, 1);
        CHECK_EQ_INT(m->ir_version, 8);
        CHECK_EQ_INT(kn_model_opset(m, ""), 17);
        const kn_node *n = &g->nodes[0];
        CHECK(!strcmp(n->op_type, "If"));
        CHECK_EQ_INT(n->n_attr, 4);
        const kn_graph *t = kn_attr_graph(n, "then_branch");
        const kn_graph *e = kn_attr_graph(n, "else_branch");
        CHECK(t && e);
        if (t && e) {
            CHECK(!strcmp(e->name, "else"));
            CHECK_EQ_INT(e->n_nodes, 1);
            CHECK(!strcmp(e->nodes[0].op_type, "Neg"));
        }
        const int64_t *iv;
        CHECK_EQ_INT(kn_attr_ints(n, "some_ints", &iv), 3);
        if (kn_attr_ints(n, "some_ints", &iv) == 3) {
            CHECK_EQ_INT(iv[0], 3);
            CHECK_EQ_INT(iv[1], -1);
            CHECK_EQ_INT(iv[2], 7);
        }
        CHECK_NEAR(kn_attr_float(n, "alpha", 0), 0.5, 0);
        int w = kn_graph_find(g, "w"), c = kn_graph_find(g, "c"), y = kn_graph_find(g, "y");
        CHECK(w >= 0 && c >= 0 && y >= 0);
        if (w >= 0 && c >= 0 && y >= 0) {
            CHECK(g->values[w].init && g->values[w].init->numel == 4);
            if (g->values[w].init)
                CHECK_NEAR(((const float *)g->values[w].init->data)[3], 4.0, 0);
            CHECK(g->values[c].init && g->values[c].init->dtype == KN_BOOL);
            if (g->values[c].init)
                CHECK_EQ_INT(((const uint8_t *)g->values[c].init->data)[0], 1);
            CHECK(g->values[y].has_type && g->values[y].type.rank == 1);
        }
        kn_model_free(m);
    }
    /* the full load either succeeds or reports only missing operators */
    rc = load_bytes(&b, &m, &err);
    CHECK(rc == KN_OK || rc == KN_ERR_UNSUPPORTED);
    if (rc == KN_OK)
        kn_model_free(m);
    free(b.p);
}

static void test_truncation(void)
{
    pbuf b = rich_model();
    int fails = 0;
    for (size_t len = 0; len < b.n; len++) {
        kn_model *m = NULL;
        kn_error err;
        /* exact-size copy so ASan catches any read past the end */
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, b.p, len);
        int rc = kn_onnx_load_buffer(copy, len, NULL, &m, &err);
        free(copy);
        if (rc != KN_OK)
            fails++;
        else
            kn_model_free(m);
    }
    CHECK_EQ_INT(fails, (long long)b.n);
    free(b.p);

    /* a real model too, if the shared data is there */
    FILE *f = fopen(shared_path("/onnx-backend-tests/node/test_if/model.onnx"), "rb");
    if (!f)
        return;
    pbuf r = {0};
    uint8_t chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        pb_put(&r, chunk, got);
    fclose(f);
    for (size_t len = 0; len < r.n; len++) {
        kn_model *m = NULL;
        kn_error err;
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, r.p, len);
        int rc = kn_onnx_load_buffer(copy, len, NULL, &m, &err);
        free(copy);
        CHECK(rc != KN_OK);
        if (rc == KN_OK)
            kn_model_free(m);
    }
    free(r.p);
}

static void test_random_flips(void)
{
    pbuf b = rich_model();
    uint32_t seed = 12345;
    int outcomes[8] = {0};
    for (int it = 0; it < 500; it++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        seed = seed * 1103515245u + 12345u;
        int flips = 1 + (int)((seed >> 16) % 4);
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % b.n;
            seed = seed * 1103515245u + 12345u;
            copy[pos] ^= (uint8_t)(1u << ((seed >> 16) % 8));
        }
        kn_model *m = NULL;
        kn_error err;
        int rc = kn_onnx_load_buffer(copy, b.n, NULL, &m, &err);
        outcomes[rc >= 0 && rc < 8 ? rc : 7]++;
        if (rc == KN_OK)
            kn_model_free(m);
        free(copy);
    }
    CHECK_EQ_INT(outcomes[KN_ERR_NOMEM], 0);
    free(b.p);
}

static int init_only_load(pbuf *init, kn_model **m, kn_error *err)
{
    pbuf g = graph_with_init(init, "t", 1);
    pbuf b = model(&g);
    int rc = load_bytes(&b, m, err);
    free(b.p);
    return rc;
}

static void test_initializer_errors(void)
{
    kn_model *m;
    kn_error err;
    float data[4] = {1, 2, 3, 4};

    int64_t ok_dims[2] = {2, 2};
    pbuf t = tensor_raw("t", 1, 2, ok_dims, data, 16);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_OK);
    if (m) {
        int id = kn_graph_find(m->graph, "t");
        CHECK(id >= 0 && m->graph->values[id].init && m->graph->values[id].init->numel == 4);
        kn_model_free(m);
    }

    int64_t huge[2] = {INT64_MAX / 2, 4};
    t = tensor_raw("t", 1, 2, huge, data, 16);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);

    int64_t wrap[2] = {(int64_t)1 << 32, (int64_t)1 << 32};
    t = tensor_raw("t", 1, 2, wrap, data, 16);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);

    int64_t neg[2] = {-2, -2};
    t = tensor_raw("t", 1, 2, neg, data, 16);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "negative") != NULL);

    int64_t d4[1] = {4};
    t = tensor_raw("w", 1, 1, d4, data, 12);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "initializer 'w' has 12 bytes of raw_data, expected 16") != NULL);

    int64_t r13[13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    t = tensor_raw("t", 1, 13, r13, data, 4);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_UNSUPPORTED);

    t = tensor_raw("s", 8, 1, d4, data, 16); /* string */
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "string") != NULL);

    t = tensor_raw("f8", 17, 1, d4, data, 4); /* float8 */
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_UNSUPPORTED);

    /* typed field with the wrong count */
    t = (pbuf){0};
    pb_int(&t, 1, 3);
    pb_int(&t, 2, 7);
    pb_str(&t, 8, "t");
    pb_int(&t, 7, 1);
    pb_int(&t, 7, 2);
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);

    /* no data at all for a non-empty tensor */
    t = (pbuf){0};
    pb_int(&t, 1, 3);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "t");
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_ERR_MODEL);

    /* an empty tensor needs no data */
    t = (pbuf){0};
    pb_int(&t, 1, 0);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "t");
    CHECK_EQ_INT(init_only_load(&t, &m, &err), KN_OK);
    if (m)
        kn_model_free(m);
}

static void test_unaligned_raw_is_copied(void)
{
    /* name "ab" puts raw_data at an odd offset in most layouts; either way the
     * tensor data must be aligned to its element size */
    for (int pad = 0; pad < 8; pad++) {
        char name[16] = "t";
        for (int k = 0; k < pad; k++)
            name[1 + k] = 'x';
        name[1 + pad] = '\0';
        int64_t v[3] = {-1, 2, INT64_MAX};
        int64_t d[1] = {3};
        pbuf t = tensor_raw(name, 7, 1, d, v, sizeof v);
        pbuf g = graph_with_init(&t, name, 7);
        pbuf b = model(&g);
        kn_model *m;
        kn_error err;
        CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_OK);
        if (m) {
            const kn_tensor *x = m->graph->values[kn_graph_find(m->graph, name)].init;
            CHECK((uintptr_t)x->data % 8 == 0);
            CHECK(!memcmp(x->data, v, sizeof v));
            kn_model_free(m);
        }
        free(b.p);
    }
}

static void test_string_graph_io(void)
{
    pbuf g = {0};
    pbuf in = value_info("s", 8, 1, (int64_t[]){2});
    pbuf out = value_info("s", 8, 1, (int64_t[]){2});
    pb_msg(&g, 11, &in);
    pb_msg(&g, 12, &out);
    pbuf b = model(&g);
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_OK);
    if (m) {
        const kn_value *v = &m->graph->values[m->graph->inputs[0]];
        CHECK(v->has_type && v->type.dtype == KN_STRING && v->type.rank == 1);
        kn_model_free(m);
    }
    free(b.p);
}

static void test_cycle(void)
{
    pbuf g = {0};
    const char *a[1] = {"a"}, *bb[1] = {"b"}, *x[1] = {"x"};
    pbuf n1 = node("Relu", "n1", 1, bb, 1, a, NULL, 0);
    pbuf n2 = node("Relu", "n2", 1, a, 1, bb, NULL, 0);
    pbuf n3 = node("Relu", "n3", 1, bb, 1, x, NULL, 0);
    pb_msg(&g, 1, &n1);
    pb_msg(&g, 1, &n2);
    pb_msg(&g, 1, &n3);
    pbuf out = value_info("x", 1, -1, NULL);
    pb_msg(&g, 12, &out);
    pbuf b = model(&g);
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "cycle") != NULL);
    free(b.p);
}

static pbuf nested_if(int depth)
{
    pbuf g = {0};
    if (depth > 0) {
        pbuf attr = {0}, sub = nested_if(depth - 1);
        pb_str(&attr, 1, "then_branch");
        pb_msg(&attr, 6, &sub);
        pb_int(&attr, 20, 5);
        const char *in[1] = {"c"}, *out[1] = {"y"};
        pbuf n = node("If", NULL, 1, in, 1, out, &attr, 1);
        pb_msg(&g, 1, &n);
    }
    pbuf o = value_info("y", 1, -1, NULL);
    pb_msg(&g, 12, &o);
    return g;
}

static void test_deep_nesting(void)
{
    pbuf small = nested_if(3);
    pbuf sb = model(&small);
    save_seed("nested.onnx", &sb);
    free(sb.p);
    pbuf g = nested_if(200);
    pbuf b = model(&g);
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "nested") != NULL);
    if (!strstr(err.msg, "nested"))
        fprintf(stderr, "deep nesting: %.300s\n", err.msg);
    free(b.p);
}

static void test_wire_errors(void)
{
    kn_model *m;
    kn_error err;
    /* 11-byte varint for ir_version */
    uint8_t overlong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_EQ_INT(kn_onnx_load_buffer(overlong, sizeof overlong, NULL, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "varint") != NULL);
    /* group wire type */
    uint8_t group[] = {0x0b, 0x0c};
    CHECK_EQ_INT(kn_onnx_load_buffer(group, sizeof group, NULL, &m, &err), KN_ERR_MODEL);
    /* length beyond the end */
    uint8_t longlen[] = {0x3a, 0x7f, 0x00};
    CHECK_EQ_INT(kn_onnx_load_buffer(longlen, sizeof longlen, NULL, &m, &err), KN_ERR_MODEL);
    /* wrong wire type for the graph */
    uint8_t badwire[] = {0x38, 0x01};
    CHECK_EQ_INT(kn_onnx_load_buffer(badwire, sizeof badwire, NULL, &m, &err), KN_ERR_MODEL);
    /* empty input: no graph */
    CHECK_EQ_INT(kn_onnx_load_buffer("", 0, NULL, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "no graph") != NULL);
    /* unknown fields of every wire type are skipped */
    pbuf t = {0};
    float one = 1.0f;
    int64_t d1[1] = {1};
    t = tensor_raw("t", 1, 1, d1, &one, 4);
    pbuf g = graph_with_init(&t, "t", 1);
    pbuf b = model(&g);
    pb_int(&b, 1000, 5);
    pb_str(&b, 1001, "junk");
    pb_f32(&b, 1002, 1.0f);
    pb_tag(&b, 1003, 1);
    pb_put(&b, "12345678", 8);
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_OK);
    if (m)
        kn_model_free(m);
    free(b.p);
}

/* ---- external data ---- */

static char tmpdir[256];

static void write_file(const char *name, const void *d, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(d, 1, n, f);
    fclose(f);
}

static pbuf external_tensor(const char *name, int64_t n, const char *loc, const char *offset,
                            const char *length)
{
    pbuf t = {0};
    pb_int(&t, 1, n);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    const char *keys[3] = {"location", "offset", "length"};
    const char *vals[3] = {loc, offset, length};
    for (int k = 0; k < 3; k++) {
        if (!vals[k])
            continue;
        pbuf e = {0};
        pb_str(&e, 1, keys[k]);
        pb_str(&e, 2, vals[k]);
        pb_msg(&t, 13, &e);
    }
    pb_int(&t, 14, 1);
    return t;
}

static int load_external(pbuf *t, kn_model **m, kn_error *err)
{
    pbuf g = graph_with_init(t, "w", 1);
    pbuf b = model(&g);
    write_file("model.onnx", b.p, b.n);
    free(b.p);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", tmpdir);
    *m = NULL;
    return kn_onnx_load_file(path, m, err);
}

static void test_external_data(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_onnx_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(!"mkdtemp failed");
        return;
    }
    float w[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    write_file("weights.bin", w, sizeof w);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    mkdir(sub, 0700);
    write_file("sub/more.bin", w, sizeof w);
    kn_model *m;
    kn_error err;

    pbuf t = external_tensor("w", 4, "weights.bin", "16", "16");
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_OK);
    if (m) {
        const kn_tensor *x = m->graph->values[kn_graph_find(m->graph, "w")].init;
        CHECK(x && x->numel == 4);
        if (x)
            CHECK_NEAR(((const float *)x->data)[0], 4.0, 0);
        kn_model_free(m);
    }
    t = external_tensor("w", 8, "sub/more.bin", NULL, NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_OK);
    if (m) {
        const kn_tensor *x = m->graph->values[kn_graph_find(m->graph, "w")].init;
        CHECK(x && x->numel == 8 && ((const float *)x->data)[7] == 7.0f);
        kn_model_free(m);
    }
    /* unaligned offset: copied */
    t = external_tensor("w", 1, "weights.bin", "2", NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_OK);
    if (m) {
        const kn_tensor *x = m->graph->values[kn_graph_find(m->graph, "w")].init;
        CHECK(x && (uintptr_t)x->data % 4 == 0);
        kn_model_free(m);
    }
    t = external_tensor("w", 4, "missing.bin", NULL, NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_IO);
    CHECK(strstr(err.msg, "missing.bin") != NULL);
    t = external_tensor("w", 4, "../weights.bin", NULL, NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    t = external_tensor("w", 4, "sub/../../x.bin", NULL, NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    t = external_tensor("w", 4, "/etc/passwd", NULL, NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    /* a symlink inside the directory that points outside it */
    char link[512];
    snprintf(link, sizeof link, "%s/escape.bin", tmpdir);
    if (symlink("/", link) == 0) {
        t = external_tensor("w", 1, "escape.bin", NULL, NULL);
        CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
        unlink(link);
    }
    t = external_tensor("w", 4, "weights.bin", "24", NULL); /* past the end */
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    t = external_tensor("w", 4, "weights.bin", "0", "12"); /* length mismatch */
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    t = external_tensor("w", (int64_t)1 << 40, "weights.bin", NULL, NULL); /* 4 TiB */
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_UNSUPPORTED);
    t = external_tensor("w", 4, "weights.bin", "-4", NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    t = external_tensor("w", 4, "weights.bin", "18446744073709551615", NULL);
    CHECK_EQ_INT(load_external(&t, &m, &err), KN_ERR_MODEL);
    /* from memory: no directory to resolve against */
    t = external_tensor("w", 4, "weights.bin", NULL, NULL);
    pbuf g = graph_with_init(&t, "w", 1);
    pbuf b = model(&g);
    save_seed("external.onnx", &b);
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_ERR_MODEL);
    /* ... unless a base directory is given */
    CHECK_EQ_INT(kn_onnx_load_buffer(b.p, b.n, tmpdir, &m, &err), KN_OK);
    if (m)
        kn_model_free(m);
    free(b.p);

    char path[512];
    const char *files[] = {"model.onnx", "weights.bin", "sub/more.bin"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[k]);
        unlink(path);
    }
    rmdir(sub);
    rmdir(tmpdir);
}

static void test_missing_file(void)
{
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(kn_onnx_load_file("/nonexistent/kiln/model.onnx", &m, &err), KN_ERR_IO);
    CHECK(strstr(err.msg, "model.onnx") != NULL);
}

/* ---- functions ---- */

/* Function custom.Scale(X) -> Y with attribute 'alpha' (default 2.0):
 *   T = Mul(X, X); Y = LeakyRelu<alpha = @alpha>(T) */
static pbuf scale_function(bool recursive)
{
    pbuf f = {0};
    pb_str(&f, 1, "Scale");
    pb_str(&f, 4, "X");
    pb_str(&f, 5, "Y");
    pb_str(&f, 6, "alpha");
    const char *in2[2] = {"X", "X"}, *t[1] = {"T"}, *y[1] = {"Y"};
    pbuf n1 = node(recursive ? "Scale" : "Mul", "mul", 2, in2, 1, t, NULL, 0);
    if (recursive) {
        pb_str(&n1, 7, "custom");
    }
    pbuf ref = {0};
    pb_str(&ref, 1, "alpha");
    pb_int(&ref, 20, 1);
    pb_str(&ref, 21, "alpha");
    pbuf n2 = node("LeakyRelu", "lrelu", 1, t, 1, y, &ref, 1);
    pb_msg(&f, 7, &n1);
    pb_msg(&f, 7, &n2);
    pbuf os = opset("", 17);
    pb_msg(&f, 9, &os);
    pb_str(&f, 10, "custom");
    pbuf def = {0};
    pb_str(&def, 1, "alpha");
    pb_f32(&def, 2, 2.0f);
    pb_int(&def, 20, 1);
    pb_msg(&f, 11, &def);
    return f;
}

/* main: A = custom.Scale<alpha=0.25>(in); B = custom.Scale(A) (default alpha) */
static pbuf function_model(bool recursive)
{
    pbuf g = {0};
    const char *in[1] = {"in"}, *a[1] = {"A"}, *bb[1] = {"B"};
    pbuf alpha = {0};
    pb_str(&alpha, 1, "alpha");
    pb_f32(&alpha, 2, 0.25f);
    pb_int(&alpha, 20, 1);
    pbuf c1 = node("Scale", "call1", 1, in, 1, a, &alpha, 1);
    pb_str(&c1, 7, "custom");
    pbuf c2 = node("Scale", NULL, 1, a, 1, bb, NULL, 0);
    pb_str(&c2, 7, "custom");
    pb_msg(&g, 1, &c1);
    pb_msg(&g, 1, &c2);
    pbuf vin = value_info("in", 1, 1, (int64_t[]){3});
    pbuf vout = value_info("B", 1, 1, (int64_t[]){3});
    pb_msg(&g, 11, &vin);
    pb_msg(&g, 12, &vout);
    pbuf m = model(&g);
    pbuf os = opset("custom", 1);
    pb_msg(&m, 8, &os);
    pbuf f = scale_function(recursive);
    pb_msg(&m, 25, &f);
    return m;
}

static void test_function_inlining(void)
{
    pbuf b = function_model(false);
    save_seed("function.onnx", &b);
    kn_model *m = NULL;
    kn_error err;
    int rc = kn_onnx_parse_buffer(b.p, b.n, NULL, true, &m, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc == KN_OK) {
        const kn_graph *g = m->graph;
        CHECK_EQ_INT(m->n_functions, 1);
        CHECK_EQ_INT(g->n_nodes, 4);
        if (g->n_nodes == 4) {
            CHECK(!strcmp(g->nodes[0].op_type, "Mul"));
            CHECK(!strcmp(g->nodes[1].op_type, "LeakyRelu"));
            CHECK(!strcmp(g->nodes[3].op_type, "LeakyRelu"));
            CHECK(!strncmp(g->nodes[0].name, "call1#", 6));
            /* formal X -> actual 'in', Y -> actual 'A' */
            CHECK(!strcmp(g->values[g->nodes[0].in[0]].name, "in"));
            CHECK(!strcmp(g->values[g->nodes[1].out[0]].name, "A"));
            CHECK(!strcmp(g->values[g->nodes[2].in[0]].name, "A"));
            CHECK(!strcmp(g->values[g->nodes[3].out[0]].name, "B"));
            /* internal T renamed uniquely per call */
            const char *t1 = g->values[g->nodes[0].out[0]].name;
            const char *t2 = g->values[g->nodes[2].out[0]].name;
            CHECK(strcmp(t1, "T") && strcmp(t2, "T") && strcmp(t1, t2));
            CHECK_NEAR(kn_attr_float(&g->nodes[1], "alpha", -1), 0.25, 0);
            CHECK_NEAR(kn_attr_float(&g->nodes[3], "alpha", -1), 2.0, 0);
            CHECK(kn_attr_find(&g->nodes[1], "alpha")->ref_attr_name == NULL);
        }
        kn_model_free(m);
    }
    /* full load: the calls are gone, only real operators can be missing */
    rc = load_bytes(&b, &m, &err);
    CHECK(rc == KN_OK || rc == KN_ERR_UNSUPPORTED);
    if (rc == KN_ERR_UNSUPPORTED)
        CHECK(strstr(err.msg, "Scale") == NULL);
    if (rc == KN_OK)
        kn_model_free(m);
    free(b.p);

    b = function_model(true);
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "recursion") != NULL);
    free(b.p);
}

/* Function Sel(C, X) -> (Y, P): T = Neg(X); Y = If(C) {Identity(T)} else {Identity(X)};
 * P is X passed straight through. */
static pbuf select_model(void)
{
    pbuf f = {0};
    pb_str(&f, 1, "Sel");
    pb_str(&f, 4, "C");
    pb_str(&f, 4, "X");
    pb_str(&f, 5, "Y");
    pb_str(&f, 5, "X");
    const char *x[1] = {"X"}, *t[1] = {"T"}, *c[1] = {"C"}, *y[1] = {"Y"};
    pbuf neg = node("Neg", NULL, 1, x, 1, t, NULL, 0);
    pbuf br[2];
    const char *bo[2] = {"bt", "be"};
    for (int k = 0; k < 2; k++) {
        pbuf sg = {0};
        pbuf id = node("Identity", NULL, 1, k ? x : t, 1, &bo[k], NULL, 0);
        pbuf o = value_info(bo[k], 1, -1, NULL);
        pb_msg(&sg, 1, &id);
        pb_msg(&sg, 12, &o);
        br[k] = sg;
    }
    pbuf at[2] = {{0}, {0}};
    pb_str(&at[0], 1, "then_branch");
    pb_msg(&at[0], 6, &br[0]);
    pb_int(&at[0], 20, 5);
    pb_str(&at[1], 1, "else_branch");
    pb_msg(&at[1], 6, &br[1]);
    pb_int(&at[1], 20, 5);
    pbuf ifn = node("If", NULL, 1, c, 1, y, at, 2);
    pb_msg(&f, 7, &neg);
    pb_msg(&f, 7, &ifn);
    pb_str(&f, 10, "custom");

    pbuf g = {0};
    const char *ins[2] = {"c", "in"}, *outs[2] = {"A", "B"};
    pbuf call = node("Sel", "sel", 2, ins, 2, outs, NULL, 0);
    pb_str(&call, 7, "custom");
    pb_msg(&g, 1, &call);
    pbuf vc = value_info("c", 9, 0, NULL), vin = value_info("in", 1, 1, (int64_t[]){3});
    pbuf va = value_info("A", 1, 1, (int64_t[]){3}), vb = value_info("B", 1, 1, (int64_t[]){3});
    pb_msg(&g, 11, &vc);
    pb_msg(&g, 11, &vin);
    pb_msg(&g, 12, &va);
    pb_msg(&g, 12, &vb);
    pbuf m = model(&g);
    pbuf os = opset("custom", 1);
    pb_msg(&m, 8, &os);
    pb_msg(&m, 25, &f);
    return m;
}

static void test_function_with_subgraph(void)
{
    pbuf b = select_model();
    save_seed("function_if.onnx", &b);
    kn_model *m = NULL;
    kn_error err;
    int rc = kn_onnx_parse_buffer(b.p, b.n, NULL, true, &m, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc == KN_OK) {
        const kn_graph *g = m->graph;
        CHECK_EQ_INT(g->n_nodes, 3); /* Neg, If, Identity for the pass-through */
        const kn_node *ifn = NULL, *idn = NULL;
        for (int i = 0; i < g->n_nodes; i++) {
            if (!strcmp(g->nodes[i].op_type, "If"))
                ifn = &g->nodes[i];
            if (!strcmp(g->nodes[i].op_type, "Identity"))
                idn = &g->nodes[i];
        }
        CHECK(ifn && idn);
        if (idn) {
            CHECK(!strcmp(g->values[idn->in[0]].name, "in"));
            CHECK(!strcmp(g->values[idn->out[0]].name, "B"));
        }
        if (ifn) {
            const kn_graph *t = kn_attr_graph(ifn, "then_branch");
            const kn_graph *e = kn_attr_graph(ifn, "else_branch");
            CHECK(t && e);
            if (t && e) {
                const char *tin = t->values[t->nodes[0].in[0]].name;
                const char *ein = e->values[e->nodes[0].in[0]].name;
                CHECK(!strncmp(tin, "sel#", 4) && strstr(tin, "/T") != NULL);
                CHECK(!strcmp(ein, "in"));
                CHECK(t->parent == g);
            }
            CHECK(!strcmp(g->values[ifn->out[0]].name, "A"));
        }
        kn_model_free(m);
    }
    rc = load_bytes(&b, &m, &err);
    CHECK(rc == KN_OK || rc == KN_ERR_UNSUPPORTED);
    if (rc == KN_OK)
        kn_model_free(m);
    free(b.p);
}

static void test_duplicate_input(void)
{
    pbuf g = {0};
    pbuf a = value_info("x", 1, -1, NULL), b2 = value_info("x", 1, -1, NULL), o = value_info("x", 1, -1, NULL);
    pb_msg(&g, 11, &a);
    pb_msg(&g, 11, &b2);
    pb_msg(&g, 12, &o);
    pbuf b = model(&g);
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "twice") != NULL);
    free(b.p);
}

/* ---- standalone TensorProto ---- */

static void test_tensorproto(void)
{
    kn_tensor t;
    kn_error err;
    char name[8];
    /* float16 via int32_data (packed), long name truncated */
    pbuf b = {0};
    pb_int(&b, 1, 2);
    pb_int(&b, 2, 10);
    pb_str(&b, 8, "a_long_name");
    pbuf packed = {0};
    pb_varint(&packed, 0x3c00);
    pb_varint(&packed, 0xc000);
    pb_bytes(&b, 5, packed.p, packed.n);
    free(packed.p);
    save_seed("f16.pb", &b);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, name, sizeof name, &err), KN_OK);
    CHECK(!strcmp(name, "a_long_"));
    CHECK(t.dtype == KN_F16 && t.numel == 2 && t.owns_data);
    if (t.data) {
        CHECK_NEAR(kn_f16_to_f32(((uint16_t *)t.data)[0]), 1.0, 0);
        CHECK_NEAR(kn_f16_to_f32(((uint16_t *)t.data)[1]), -2.0, 0);
    }
    kn_tensor_release(&t);
    free(b.p);

    /* doubles, unpacked; uint64 packed; int8 negative values */
    b = (pbuf){0};
    pb_int(&b, 2, 11);
    pb_int(&b, 1, 2);
    double dv[2] = {1.5, -3.25};
    for (int k = 0; k < 2; k++) {
        pb_tag(&b, 10, 1);
        pb_put(&b, &dv[k], 8);
    }
    save_seed("f64.pb", &b);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_OK);
    CHECK(t.dtype == KN_F64 && ((double *)t.data)[1] == -3.25);
    kn_tensor_release(&t);
    free(b.p);

    b = (pbuf){0};
    pb_int(&b, 2, 13);
    pb_int(&b, 1, 1);
    pb_int(&b, 11, (int64_t)UINT64_MAX);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_OK);
    CHECK(((uint64_t *)t.data)[0] == UINT64_MAX);
    kn_tensor_release(&t);
    free(b.p);

    b = (pbuf){0};
    pb_int(&b, 2, 3);
    pb_int(&b, 1, 2);
    pb_int(&b, 5, -5);
    pb_int(&b, 5, 127);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_OK);
    CHECK(((int8_t *)t.data)[0] == -5 && ((int8_t *)t.data)[1] == 127);
    kn_tensor_release(&t);
    free(b.p);

    /* scalar (rank 0) float in float_data */
    b = (pbuf){0};
    pb_int(&b, 2, 1);
    pb_f32(&b, 4, 7.5f);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_OK);
    CHECK(t.rank == 0 && t.numel == 1 && ((float *)t.data)[0] == 7.5f);
    kn_tensor_release(&t);
    free(b.p);

    /* wrong field for the dtype */
    b = (pbuf){0};
    pb_int(&b, 2, 1);
    pb_int(&b, 7, 3);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_ERR_MODEL);
    free(b.p);

    /* external data is refused */
    b = external_tensor("w", 4, "x.bin", NULL, NULL);
    CHECK_EQ_INT(kn_tensorproto_read(b.p, b.n, &t, NULL, 0, &err), KN_ERR_MODEL);
    free(b.p);

    /* garbage */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    CHECK(kn_tensorproto_read(junk, sizeof junk, &t, NULL, 0, &err) != KN_OK);

    CHECK_EQ_INT(kn_tensorproto_read_file("/nonexistent.pb", &t, NULL, 0, &err), KN_ERR_IO);

    /* every shared test-data file decodes, or is reported unsupported/malformed
     * (sequence/optional files are not TensorProtos) without crashing */
    DIR *d = opendir(shared_path("/onnx-backend-tests/node"));
    if (!d)
        return;
    struct dirent *e;
    int ok = 0, other = 0;
    while ((e = readdir(d))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_0.pb",
                 shared_path("/onnx-backend-tests/node"), e->d_name);
        if (access(path, R_OK))
            continue;
        if (kn_tensorproto_read_file(path, &t, NULL, 0, &err) == KN_OK) {
            ok++;
            kn_tensor_release(&t);
        } else {
            other++;
        }
    }
    closedir(d);
    printf("test data input_0.pb: %d decoded, %d not\n", ok, other);
    CHECK(ok > 0);
}

static void test_sparse_initializer(void)
{
    /* dense [2,3] with values 5 at (0,1) and 6 at (1,2), indices as coordinates */
    pbuf vals = {0}, idx = {0}, sp = {0};
    float v[2] = {5, 6};
    int64_t vd[1] = {2};
    vals = tensor_raw("sp", 1, 1, vd, v, sizeof v);
    int64_t ix[4] = {0, 1, 1, 2};
    int64_t id[2] = {2, 2};
    idx = tensor_raw("", 7, 2, id, ix, sizeof ix);
    pb_msg(&sp, 1, &vals);
    pb_msg(&sp, 2, &idx);
    pb_int(&sp, 3, 2);
    pb_int(&sp, 3, 3);
    pbuf g = {0};
    pb_msg(&g, 15, &sp);
    pbuf out = value_info("sp", 1, -1, NULL);
    pb_msg(&g, 12, &out);
    pbuf b = model(&g);
    save_seed("sparse.onnx", &b);
    kn_model *m;
    kn_error err;
    CHECK_EQ_INT(load_bytes(&b, &m, &err), KN_OK);
    if (m) {
        const kn_tensor *t = m->graph->values[kn_graph_find(m->graph, "sp")].init;
        CHECK(t && t->numel == 6);
        if (t) {
            const float *f = t->data;
            CHECK(f[0] == 0 && f[1] == 5 && f[5] == 6 && f[4] == 0);
        }
        kn_model_free(m);
    }
    free(b.p);
}

TEST_MAIN(TEST_CASE(test_shared_models), TEST_CASE(test_shared_parse_only), TEST_CASE(test_rich_model_parse),
          TEST_CASE(test_truncation), TEST_CASE(test_random_flips), TEST_CASE(test_initializer_errors),
          TEST_CASE(test_unaligned_raw_is_copied), TEST_CASE(test_string_graph_io), TEST_CASE(test_cycle),
          TEST_CASE(test_deep_nesting), TEST_CASE(test_wire_errors), TEST_CASE(test_external_data),
          TEST_CASE(test_missing_file), TEST_CASE(test_function_inlining), TEST_CASE(test_function_with_subgraph),
          TEST_CASE(test_duplicate_input), TEST_CASE(test_tensorproto),
          TEST_CASE(test_sparse_initializer))
