/* repo.c - model repository: scanning, loading versions by policy, reference-counted
 * swaps on reload, explicit load/unload, and the repository index (see repo.h). */
#include "serve/repo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct kn_entry {
    char name[KN_CFG_NAME_MAX];
    char dir[1024];           /* DIR/<model>; "" in single-file mode */
    char file[1024];          /* single-file mode: the model */
    bool fixed_cfg;           /* single-file mode: cfg given by the caller */
    kn_model_config cfg;
    char **labels;            /* single-file mode labels */
    int n_labels;
    kn_version *versions[KN_MAX_VERSIONS]; /* ascending version */
    int n_versions;
    uint64_t disk_sig;        /* signature of the files when last loaded or unloaded */
    bool unloaded;            /* explicitly unloaded */
    bool failed;
    char reason[512];
} kn_entry;

struct kn_repo {
    pthread_mutex_t mu;       /* entries, their version arrays and states */
    pthread_mutex_t load_mu;  /* one loader at a time (scan, load, unload) */
    kn_entry **entries;
    int n, cap;
    char root[1024];
    kn_repo_options opt;
};

static void repo_log(kn_repo *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void repo_log(kn_repo *r, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->opt.log)
        r->opt.log(line);
}

/* ---- signatures: detect changed files without reading them ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t file_sig(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        return 0;
    uint64_t h = mix(0, (uint64_t)st.st_size);
    h = mix(h, (uint64_t)st.st_ino);
    h = mix(h, (uint64_t)st.st_mtim.tv_sec);
    return mix(h, (uint64_t)st.st_mtim.tv_nsec);
}

/* ---- labels ---- */

static void free_labels(char **labels, int n)
{
    for (int i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
}

static int copy_labels(const char *const *src, int n, char ***out)
{
    *out = NULL;
    if (n <= 0)
        return 0;
    char **l = calloc((size_t)n, sizeof *l);
    if (!l)
        return -1;
    for (int i = 0; i < n; i++) {
        l[i] = strdup(src[i]);
        if (!l[i]) {
            free_labels(l, i);
            return -1;
        }
    }
    *out = l;
    return 0;
}

/* Read one label per line (at most 1 MiB, 100000 labels). */
static int read_labels(const char *path, char ***out, int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open labels file %s: %s", path, strerror(errno));
        return -1;
    }
    char **l = NULL;
    int count = 0, cap = 0;
    char line[1024];
    size_t total = 0;
    while (fgets(line, sizeof line, f) && count < 100000 && total < (1u << 20)) {
        total += strlen(line);
        line[strcspn(line, "\r\n")] = '\0';
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(l, (size_t)cap * sizeof *l);
            if (!p)
                break;
            l = p;
        }
        l[count] = strdup(line);
        if (!l[count])
            break;
        count++;
    }
    fclose(f);
    *out = l;
    *n = count;
    return 0;
}

/* ---- versions ---- */

static void version_destroy(kn_version *v)
{
    kn_batcher_destroy(v->batcher);
    kiln_model_free(v->model);
    free_labels(v->labels, v->n_labels);
    free(v->in);
    free(v->out);
    free(v);
}

void kn_version_release(kn_version *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        version_destroy(v);
}

static void stats_observer(void *ctx, int rows, double compute_s)
{
    kn_stats_record_batch(ctx, rows, compute_s);
}

static int describe_io(kn_version *v, char *err, size_t errlen)
{
    v->n_in = kiln_model_input_count(v->model);
    v->n_out = kiln_model_output_count(v->model);
    v->in = calloc(v->n_in + 1, sizeof *v->in);
    v->out = calloc(v->n_out + 1, sizeof *v->out);
    if (!v->in || !v->out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < v->n_in; i++)
        kiln_model_input(v->model, i, &v->in[i]);
    for (size_t i = 0; i < v->n_out; i++)
        kiln_model_output(v->model, i, &v->out[i]);
    return 0;
}

static int start_batcher(kn_repo *r, kn_version *v, char *err, size_t errlen)
{
    const kn_model_config *c = &v->cfg;
    int target = 0;
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred[i] <= c->max_batch_size && c->preferred[i] > target)
            target = c->preferred[i];
    kn_batcher_options bo = {
        .instances = c->instance_count,
        .threads = c->threads ? c->threads : r->opt.threads,
        .max_batch = c->max_batch_size,
        .dynamic = c->dynamic_batching,
        .delay_us = c->max_queue_delay_us,
        .target_rows = target,
        .max_queue = c->max_queue_size,
    };
    return kn_batcher_create(v->model, &bo, stats_observer, v->stats, &v->batcher, err, errlen);
}

/* Load one version from path with configuration cfg. */
static kn_version *version_load(kn_repo *r, kn_entry *e, int64_t version, const char *path,
                                const kn_model_config *cfg, char *err, size_t errlen)
{
    kn_version *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&v->refs, 1);
    snprintf(v->model_name, sizeof v->model_name, "%s", e->name);
    snprintf(v->model_dir, sizeof v->model_dir, "%s", e->dir);
    v->version = version;
    v->cfg = *cfg;
    v->file_sig = file_sig(path);
    if (kiln_model_load_with(path, NULL, &v->model) != KILN_OK) {
        snprintf(err, errlen, "version %lld: %s", (long long)version, kiln_errmsg());
        free(v);
        return NULL;
    }
    v->stats = kn_stats_get(e->name, version);
    char labels_path[1100];
    int rc = kn_config_complete(&v->cfg, v->model, err, errlen) || describe_io(v, err, errlen);
    if (!rc && e->labels)
        rc = copy_labels((const char *const *)e->labels, e->n_labels, &v->labels);
    else if (!rc && v->cfg.labels[0]) {
        snprintf(labels_path, sizeof labels_path, "%s/%s", e->dir, v->cfg.labels);
        rc = read_labels(labels_path, &v->labels, &v->n_labels, err, errlen);
    }
    if (e->labels)
        v->n_labels = e->n_labels;
    if (!rc)
        rc = start_batcher(r, v, err, errlen);
    if (rc) {
        version_destroy(v);
        return NULL;
    }
    return v;
}

/* ---- entries ---- */

static kn_entry *find_entry(kn_repo *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->entries[i]->name, name))
            return r->entries[i];
    return NULL;
}

static kn_entry *add_entry(kn_repo *r, const char *name)
{
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        kn_entry **p = realloc(r->entries, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        r->entries = p;
        r->cap = cap;
    }
    kn_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    r->entries[r->n++] = e;
    return e;
}

/* Replace e's versions with the new set (mutex taken here); drop the old ones. */
static void swap_versions(kn_repo *r, kn_entry *e, kn_version **nv, int n)
{
    kn_version *old[KN_MAX_VERSIONS];
    pthread_mutex_lock(&r->mu);
    int n_old = e->n_versions;
    memcpy(old, e->versions, sizeof old);
    if (n)
        memcpy(e->versions, nv, (size_t)n * sizeof *nv);
    e->n_versions = n;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n_old; i++) {
        bool kept = false;
        for (int j = 0; j < n; j++)
            kept = kept || nv[j] == old[i];
        if (!kept)
            kn_version_release(old[i]);
    }
}

static bool is_version_name(const char *s, int64_t *v)
{
    if (!*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    *v = strtoll(s, NULL, 10);
    return *v > 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Versions present on disk (with a model.onnx), ascending. */
static int disk_versions(const char *dir, int64_t *out, int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        int64_t v;
        char path[1400];
        if (!is_version_name(de->d_name, &v))
            continue;
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, de->d_name);
        struct stat st;
        if (!stat(path, &st) && S_ISREG(st.st_mode))
            out[n++] = v;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_i64);
    return n;
}

static bool policy_selects(const kn_model_config *c, const int64_t *all, int n, int idx)
{
    if (c->policy == KN_POLICY_ALL)
        return true;
    if (c->policy == KN_POLICY_LATEST)
        return idx >= n - c->latest_n;
    for (int i = 0; i < c->n_specific; i++)
        if (c->specific[i] == all[idx])
            return true;
    return false;
}

static uint64_t entry_disk_sig(const kn_entry *e)
{
    if (!e->dir[0])
        return file_sig(e->file);
    char path[1400];
    snprintf(path, sizeof path, "%s/config.json", e->dir);
    uint64_t h = mix(1, file_sig(path));
    int64_t vs[256];
    int n = disk_versions(e->dir, vs, 256);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%lld/model.onnx", e->dir, (long long)vs[i]);
        h = mix(mix(h, (uint64_t)vs[i]), file_sig(path));
    }
    return h;
}

static char *read_small_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* Read config.json (if any) of a repository entry into cfg. */
static int entry_config(kn_repo *r, const kn_entry *e, kn_model_config *cfg, uint64_t *sig,
                        char *err, size_t errlen)
{
    if (e->fixed_cfg) {
        *cfg = e->cfg;
        *sig = 0;
        return 0;
    }
    kn_config_defaults(cfg);
    cfg->max_queue_size = r->opt.max_queue > 0 ? r->opt.max_queue : cfg->max_queue_size;
    char path[1400];
    snprintf(path, sizeof path, "%s/config.json", e->dir);
    *sig = file_sig(path);
    struct stat st;
    if (stat(path, &st))
        return 0; /* no config: inferred */
    if (st.st_size > (1 << 20)) {
        snprintf(err, errlen, "config.json is larger than 1 MiB");
        return -1;
    }
    char *text = read_small_file(path, (size_t)st.st_size);
    if (!text) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    int rc = kn_config_parse(text, cfg, err, errlen);
    free(text);
    if (!rc && cfg->labels[0]) {
        snprintf(path, sizeof path, "%s/%s", e->dir, cfg->labels);
        *sig = mix(*sig, file_sig(path));
    }
    return rc;
}

/* Drop the versions of a failed load that are not in the current set. */
static void release_new(kn_entry *e, kn_version **nv, int n)
{
    for (int j = 0; j < n; j++) {
        bool current = false;
        for (int k = 0; k < e->n_versions; k++)
            current = current || e->versions[k] == nv[j];
        if (!current)
            kn_version_release(nv[j]);
    }
}

/* (Re)load entry e from disk.  Keeps the current versions if anything fails. */
static int entry_load(kn_repo *r, kn_entry *e, char *err, size_t errlen)
{
    kn_model_config cfg;
    uint64_t cfg_sig;
    e->disk_sig = entry_disk_sig(e);
    if (entry_config(r, e, &cfg, &cfg_sig, err, errlen))
        return -1;
    if (!cfg.timeout_us)
        cfg.timeout_us = r->opt.default_timeout_us;
    int64_t all[256];
    int n_all = 1;
    all[0] = 1;
    if (e->dir[0])
        n_all = disk_versions(e->dir, all, 256);
    kn_version *nv[KN_MAX_VERSIONS];
    int n = 0;
    for (int i = 0; i < n_all && n < KN_MAX_VERSIONS; i++) {
        if (!policy_selects(&cfg, all, n_all, i))
            continue;
        char path[1400];
        if (e->dir[0])
            snprintf(path, sizeof path, "%s/%lld/model.onnx", e->dir, (long long)all[i]);
        else
            snprintf(path, sizeof path, "%s", e->file);
        kn_version *keep = NULL; /* unchanged version: reuse it (no reload, no drain) */
        pthread_mutex_lock(&r->mu);
        for (int j = 0; j < e->n_versions; j++) {
            kn_version *ov = e->versions[j];
            if (ov->version == all[i] && ov->file_sig == file_sig(path) && ov->cfg_sig == cfg_sig &&
                !e->unloaded) {
                keep = ov;
            }
        }
        pthread_mutex_unlock(&r->mu);
        if (!keep) {
            keep = version_load(r, e, all[i], path, &cfg, err, errlen);
            if (!keep) {
                release_new(e, nv, n);
                return -1;
            }
            keep->cfg_sig = cfg_sig;
            repo_log(r, "loaded model '%s' version %lld from %s", e->name, (long long)all[i], path);
        }
        nv[n++] = keep;
    }
    if (n == 0) {
        snprintf(err, errlen, "no version of model '%s' to load (need <version>/model.onnx "
                 "matching the version policy)", e->name);
        return -1;
    }
    swap_versions(r, e, nv, n);
    e->unloaded = false;
    e->failed = false;
    e->reason[0] = '\0';
    return 0;
}

static void entry_unload(kn_repo *r, kn_entry *e, const char *why)
{
    swap_versions(r, e, NULL, 0);
    pthread_mutex_lock(&r->mu);
    snprintf(e->reason, sizeof e->reason, "%s", why);
    pthread_mutex_unlock(&r->mu);
}

static void entry_free(kn_entry *e)
{
    for (int i = 0; i < e->n_versions; i++)
        kn_version_release(e->versions[i]);
    free_labels(e->labels, e->n_labels);
    free(e);
}

/* ---- public ---- */

int kn_repo_create(const char *root, const kn_repo_options *opt, kn_repo **out)
{
    kn_repo *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->load_mu, NULL);
    if (root)
        snprintf(r->root, sizeof r->root, "%s", root);
    if (opt)
        r->opt = *opt;
    *out = r;
    return 0;
}

void kn_repo_destroy(kn_repo *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        entry_free(r->entries[i]);
    free(r->entries);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->load_mu);
    free(r);
}

int kn_repo_add_file(kn_repo *r, const char *name, const char *path, const kn_model_config *cfg,
                     const char *const *labels, int n_labels, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->load_mu);
    pthread_mutex_lock(&r->mu);
    kn_entry *e = find_entry(r, name) ? NULL : add_entry(r, name);
    pthread_mutex_unlock(&r->mu);
    int rc = -1;
    if (!e)
        snprintf(err, errlen, "model '%s' already exists or out of memory", name);
    else {
        snprintf(e->file, sizeof e->file, "%s", path);
        e->fixed_cfg = true;
        if (cfg)
            e->cfg = *cfg;
        else
            kn_config_defaults(&e->cfg);
        if (!e->cfg.timeout_us)
            e->cfg.timeout_us = r->opt.default_timeout_us;
        if (r->opt.max_queue > 0 && !cfg)
            e->cfg.max_queue_size = r->opt.max_queue;
        rc = copy_labels(labels, n_labels, &e->labels);
        e->n_labels = e->labels ? n_labels : 0;
        if (!rc)
            rc = entry_load(r, e, err, errlen);
        if (rc) {
            e->failed = true;
            snprintf(e->reason, sizeof e->reason, "%s", err);
        }
    }
    pthread_mutex_unlock(&r->load_mu);
    return rc;
}

static bool valid_model_name(const char *s)
{
    if (!*s || s[0] == '.' || strlen(s) >= KN_CFG_NAME_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static bool dir_exists(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static void scan_existing(kn_repo *r)
{
    for (int i = 0; i < r->n; i++) {
        kn_entry *e = r->entries[i];
        if (!e->dir[0])
            continue;
        if (!dir_exists(e->dir)) {
            if (e->n_versions)
                repo_log(r, "model '%s' removed from the repository: unloaded", e->name);
            entry_unload(r, e, "removed from the repository");
            continue;
        }
        uint64_t sig = entry_disk_sig(e);
        if (sig == e->disk_sig)
            continue;
        char err[1024];
        if (entry_load(r, e, err, sizeof err)) {
            e->failed = true;
            snprintf(e->reason, sizeof e->reason, "%s", err);
            repo_log(r, "model '%s': load failed: %s", e->name, err);
        }
    }
}

static void scan_new(kn_repo *r)
{
    DIR *d = opendir(r->root);
    if (!d) {
        repo_log(r, "cannot read repository %s: %s", r->root, strerror(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/%s", r->root, de->d_name);
        if (!valid_model_name(de->d_name) || !dir_exists(dir) || find_entry(r, de->d_name))
            continue;
        pthread_mutex_lock(&r->mu);
        kn_entry *e = add_entry(r, de->d_name);
        if (e)
            snprintf(e->dir, sizeof e->dir, "%s", dir);
        pthread_mutex_unlock(&r->mu);
        char err[1024];
        if (e && entry_load(r, e, err, sizeof err)) {
            e->failed = true;
            snprintf(e->reason, sizeof e->reason, "%s", err);
            repo_log(r, "model '%s': load failed: %s", e->name, err);
        }
    }
    closedir(d);
}

void kn_repo_scan(kn_repo *r)
{
    if (!r->root[0])
        return;
    pthread_mutex_lock(&r->load_mu);
    scan_existing(r);
    scan_new(r);
    pthread_mutex_unlock(&r->load_mu);
}

int kn_repo_load(kn_repo *r, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->load_mu);
    kn_entry *e = find_entry(r, name);
    int status = 200;
    if (!e && r->root[0] && valid_model_name(name)) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/%s", r->root, name);
        if (dir_exists(dir)) {
            pthread_mutex_lock(&r->mu);
            e = add_entry(r, name);
            if (e)
                snprintf(e->dir, sizeof e->dir, "%s", dir);
            pthread_mutex_unlock(&r->mu);
        }
    }
    if (!e) {
        snprintf(err, errlen, "model '%s' is not in the repository", name);
        status = 404;
    } else if (e->dir[0] && !dir_exists(e->dir)) {
        snprintf(err, errlen, "model '%s' is no longer in the repository", name);
        status = 404;
    } else {
        e->unloaded = false;
        if (entry_load(r, e, err, errlen)) {
            e->failed = true;
            snprintf(e->reason, sizeof e->reason, "%s", err);
            status = 400;
        }
    }
    pthread_mutex_unlock(&r->load_mu);
    return status;
}

int kn_repo_unload(kn_repo *r, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->load_mu);
    kn_entry *e = find_entry(r, name);
    int status = 200;
    if (!e) {
        snprintf(err, errlen, "unknown model '%s'", name);
        status = 404;
    } else {
        entry_unload(r, e, "unloaded");
        e->unloaded = true;
        e->disk_sig = entry_disk_sig(e);
        repo_log(r, "model '%s' unloaded", name);
    }
    pthread_mutex_unlock(&r->load_mu);
    return status;
}

int kn_repo_acquire(kn_repo *r, const char *name, int64_t version, kn_version **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    kn_entry *e = find_entry(r, name);
    int status = 200;
    if (!e) {
        snprintf(err, errlen, "unknown model '%s'", name);
        status = 404;
    } else if (!e->n_versions) {
        snprintf(err, errlen, "model '%s' is not loaded%s%s", name, e->reason[0] ? ": " : "",
                 e->reason);
        status = 503;
    } else {
        kn_version *v = version <= 0 ? e->versions[e->n_versions - 1] : NULL;
        for (int i = 0; !v && i < e->n_versions; i++)
            if (e->versions[i]->version == version)
                v = e->versions[i];
        if (!v) {
            snprintf(err, errlen, "model '%s' has no loaded version %lld", name, (long long)version);
            status = 404;
        } else {
            atomic_fetch_add(&v->refs, 1);
            *out = v;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return status;
}

int kn_repo_versions(kn_repo *r, const char *name, int64_t *out, int max)
{
    pthread_mutex_lock(&r->mu);
    kn_entry *e = find_entry(r, name);
    int n = e ? e->n_versions : 0;
    for (int i = 0; out && i < n && i < max; i++)
        out[i] = e->versions[i]->version;
    pthread_mutex_unlock(&r->mu);
    return e && !n ? -1 : n;
}

int kn_repo_default_model(kn_repo *r, char *name, size_t len)
{
    pthread_mutex_lock(&r->mu);
    int found = 0;
    for (int i = 0; i < r->n; i++)
        if (r->entries[i]->n_versions) {
            if (!found)
                snprintf(name, len, "%s", r->entries[i]->name);
            found++;
        }
    pthread_mutex_unlock(&r->mu);
    return found;
}

void kn_repo_index_json(kn_repo *r, kn_sbuf *o)
{
    pthread_mutex_lock(&r->mu);
    kn_sbuf_puts(o, "[");
    bool first = true;
    for (int i = 0; i < r->n; i++) {
        kn_entry *e = r->entries[i];
        for (int k = 0; k < (e->n_versions ? e->n_versions : 1); k++) {
            kn_sbuf_puts(o, first ? "{\"name\":" : ",{\"name\":");
            first = false;
            kn_sbuf_json_str(o, e->name);
            if (e->n_versions)
                kn_sbuf_printf(o, ",\"version\":\"%lld\",\"state\":\"READY\"}",
                               (long long)e->versions[k]->version);
            else {
                kn_sbuf_puts(o, ",\"state\":\"UNAVAILABLE\",\"reason\":");
                kn_sbuf_json_str(o, e->reason);
                kn_sbuf_puts(o, "}");
            }
        }
    }
    kn_sbuf_puts(o, "]");
    pthread_mutex_unlock(&r->mu);
}

void kn_repo_queue_gauges(kn_repo *r, kn_sbuf *o)
{
    kn_sbuf_puts(o, "# HELP kiln_queue_size Requests waiting in the model queue\n"
                    "# TYPE kiln_queue_size gauge\n");
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->entries[i]->n_versions; k++) {
            kn_version *v = r->entries[i]->versions[k];
            kn_sbuf_printf(o, "kiln_queue_size{model=\"%s\",version=\"%lld\"} %d\n", v->model_name,
                           (long long)v->version, kn_batcher_queued(v->batcher));
        }
    pthread_mutex_unlock(&r->mu);
}

bool kn_repo_ready(kn_repo *r)
{
    pthread_mutex_lock(&r->mu);
    bool ready = true;
    for (int i = 0; i < r->n; i++)
        ready = ready && (r->entries[i]->n_versions > 0 || r->entries[i]->unloaded ||
                          r->entries[i]->failed);
    pthread_mutex_unlock(&r->mu);
    return ready;
}
