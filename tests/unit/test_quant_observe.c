/* test_quant_observe.c - the observer (src/quant/observe.c): every float value of
 * the example model reaches the callback once, in production order, with the
 * values a plain run computes; a list of names narrows it; bad calls fail cleanly. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "formats/npy.h"
#include "quant/quant.h"

typedef struct seen {
    int count;
    char names[64][128];
    float last_out[256];
    long long out_numel;
    int got_out;
    int all_float;
} seen;

static int record(void *user, const char *name, const kn_tensor *t, kn_error *err)
{
    (void)err;
    seen *s = user;
    if (s->count < 64)
        snprintf(s->names[s->count], sizeof s->names[0], "%s", name);
    s->count++;
    if (t->dtype != KN_F32)
        s->all_float = 0;
    if (strcmp(name, "output") == 0 && t->numel <= 256) {
        memcpy(s->last_out, t->data, (size_t)t->numel * sizeof(float));
        s->out_numel = t->numel;
        s->got_out = 1;
    }
    return KN_OK;
}

static int load_input(kn_tensor *in)
{
    kn_error err = {0};
    return kn_npy_read_file(KILN_SHARED_DIR "/models/fmnist_cnn.in.input.npy", in, &err);
}

static void test_all_values(void)
{
    kn_error err = {0};
    kn_observer *o = NULL;
    CHECK_EQ_INT(kn_observer_open(KILN_SHARED_DIR "/models/fmnist_cnn.onnx", NULL, 0, 1, &o, &err), 0);
    if (!o)
        return;
    kn_tensor in = {0};
    CHECK_EQ_INT(load_input(&in), 0);
    const kn_tensor *ins[1] = {&in};
    seen s = {.all_float = 1};
    CHECK_EQ_INT(kn_observer_run(o, 1, ins, record, &s, &err), 0);
    const kn_graph *g = kn_observer_model(o)->graph;
    CHECK(s.count >= g->n_nodes / 2);
    CHECK(s.all_float);
    CHECK(strcmp(s.names[0], "input") == 0);   /* the graph input comes first */
    CHECK(s.got_out);
    /* the observed output is the model's output */
    kn_tensor ref = {0};
    CHECK_EQ_INT(kn_npy_read_file(KILN_SHARED_DIR "/models/fmnist_cnn.out.output.npy", &ref, &err), 0);
    CHECK_EQ_INT(ref.numel, s.out_numel);
    if (ref.numel == s.out_numel && s.got_out)
        for (int i = 0; i < ref.numel; i++)
            CHECK_NEAR(s.last_out[i], ((float *)ref.data)[i], 1e-3);
    /* a second run sees the same number of values */
    seen s2 = {.all_float = 1};
    CHECK_EQ_INT(kn_observer_run(o, 1, ins, record, &s2, &err), 0);
    CHECK_EQ_INT(s2.count, s.count);
    kn_tensor_release(&ref);
    kn_tensor_release(&in);
    kn_observer_close(o);
}

static void test_named_values_and_errors(void)
{
    kn_error err = {0};
    kn_observer *o = NULL;
    const char *names[] = {"output"};
    CHECK_EQ_INT(kn_observer_open(KILN_SHARED_DIR "/models/fmnist_cnn.onnx", names, 1, 1, &o, &err), 0);
    if (!o)
        return;
    kn_tensor in = {0};
    CHECK_EQ_INT(load_input(&in), 0);
    const kn_tensor *ins[1] = {&in};
    seen s = {.all_float = 1};
    CHECK_EQ_INT(kn_observer_run(o, 1, ins, record, &s, &err), 0);
    CHECK_EQ_INT(s.count, 1);
    CHECK(s.got_out);
    kn_error e2 = {0};
    CHECK(kn_observer_run(o, 0, NULL, record, &s, &e2) != 0);  /* wrong input count */
    CHECK(strstr(e2.msg, "inputs") != NULL);
    kn_tensor_release(&in);
    kn_observer_close(o);
    kn_error e3 = {0};
    CHECK(kn_observer_open("/nonexistent.onnx", NULL, 0, 1, &o, &e3) != 0);
    CHECK(o == NULL);
}

TEST_MAIN(TEST_CASE(test_all_values), TEST_CASE(test_named_values_and_errors))
