/* repo.h - the model repository: DIR/<model>/config.json and DIR/<model>/<version>/
 * model.onnx, laid out like Triton's.  Loads the versions a model's version policy
 * selects, each with its batcher; swaps in new versions on reload without dropping
 * in-flight requests (every request holds a reference on the version it uses). */
#ifndef KN_SERVE_REPO_H
#define KN_SERVE_REPO_H

#include "kiln.h"
#include "serve/batcher.h"
#include "serve/config.h"
#include "serve/metrics.h"
#include "serve/sbuf.h"

#include <stdatomic.h>
#include <stdint.h>

#define KN_MAX_VERSIONS 32

/* One loaded model version. Immutable after load except the reference count. */
typedef struct kn_version {
    char model_name[KN_CFG_NAME_MAX];
    int64_t version;
    char model_dir[1024];   /* for files the config names (labels) */
    kiln_model *model;
    kn_model_config cfg;
    kn_batcher *batcher;
    kn_model_stats *stats;
    char **labels;
    int n_labels;
    kiln_value_info *in, *out;
    size_t n_in, n_out;
    atomic_int refs;
    uint64_t file_sig, cfg_sig;
} kn_version;

typedef struct kn_repo kn_repo;

typedef struct kn_repo_options {
    int threads;              /* intra-op threads per session when config says 0 */
    int64_t default_timeout_us;
    int max_queue;            /* default queue bound when config.json gives none */
    void (*log)(const char *line); /* server log lines (model loaded, load failed...) */
} kn_repo_options;

int kn_repo_create(const char *root, const kn_repo_options *opt, kn_repo **out);
void kn_repo_destroy(kn_repo *repo);

/* Serve a single model file as model `name`, version 1.  cfg (NULL: defaults)
 * overrides config inference; labels (may be NULL) are copied. */
int kn_repo_add_file(kn_repo *repo, const char *name, const char *path, const kn_model_config *cfg,
                     const char *const *labels, int n_labels, char *err, size_t errlen);

/* Rescan the repository root: load new models and changed versions, unload removed
 * ones.  Models unloaded explicitly stay unloaded until their files change. */
void kn_repo_scan(kn_repo *repo);

/* Explicit control (POST /v2/repository/models/<m>/load|unload).  Return an HTTP status. */
int kn_repo_load(kn_repo *repo, const char *name, char *err, size_t errlen);
int kn_repo_unload(kn_repo *repo, const char *name, char *err, size_t errlen);

/* Take a reference on a ready version (version <= 0: the highest loaded).  Returns
 * 200, or 404 (unknown model/version) / 503 (model known but not loaded) with a
 * message in err. */
int kn_repo_acquire(kn_repo *repo, const char *name, int64_t version, kn_version **out,
                    char *err, size_t errlen);
void kn_version_release(kn_version *v);

/* Loaded versions of model, ascending, into out (up to max); returns how many are
 * loaded, 0 for an unknown model, -1 for a known model with none loaded (out may be NULL). */
int kn_repo_versions(kn_repo *repo, const char *name, int64_t *out, int max);

/* Name of the only model when exactly one is loaded (for /predict); else NULL. */
int kn_repo_default_model(kn_repo *repo, char *name, size_t len);

/* Triton repository index: [{"name":..,"version":..,"state":..,"reason":..}]. */
void kn_repo_index_json(kn_repo *repo, kn_sbuf *out);
/* Prometheus gauge kiln_queue_size{model,version}: requests waiting per loaded version. */
void kn_repo_queue_gauges(kn_repo *repo, kn_sbuf *out);
/* True when every model that should be loaded is (server readiness). */
bool kn_repo_ready(kn_repo *repo);

#endif
