/* pwhash.c — the password-hash worker pool (see pwhash.h). */
#include "pwhash.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pwhash_pool {
    struct lws_context *ctx;
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    struct pwhash_job *todo_head, *todo_tail;
    struct pwhash_job *done;           /* finished, LIFO; drained in bulk */
    int queued, max_queued;
    int stopping;
    int nthreads;
    pthread_t *threads;
    unsigned long long opslimit;       /* of new hashes (enum pwhash_cost) */
    size_t memlimit;
    char dummy_hash[crypto_pwhash_STRBYTES];
};

int pwhash_cost_parse(const char *name, enum pwhash_cost *cost)
{
    if (strcmp(name, "interactive") == 0)
        *cost = PWHASH_COST_INTERACTIVE;
    else if (strcmp(name, "min") == 0)
        *cost = PWHASH_COST_MIN;
    else
        return -1;
    return 0;
}

static void pwhash_set_cost(struct pwhash_pool *pool, enum pwhash_cost cost)
{
    int min = cost == PWHASH_COST_MIN;
    pool->opslimit = min ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    pool->memlimit = min ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
}

static void pwhash_run(const struct pwhash_pool *pool, struct pwhash_job *job)
{
    size_t n = strlen(job->password);
    if (job->kind == PWHASH_HASH)
        job->ok = crypto_pwhash_str(job->hash, job->password, n,
                                    pool->opslimit, pool->memlimit) == 0;
    else
        job->ok = crypto_pwhash_str_verify(job->hash, job->password, n) == 0;
    sodium_memzero(job->password, sizeof job->password);
}

static struct pwhash_job *pwhash_next(struct pwhash_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (!pool->todo_head && !pool->stopping)
        pthread_cond_wait(&pool->cond, &pool->lock);
    struct pwhash_job *job = pool->todo_head;
    if (job && !pool->stopping) {
        pool->todo_head = job->next;
        if (!pool->todo_head)
            pool->todo_tail = NULL;
    } else {
        job = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    return job;
}

static void *pwhash_worker(void *arg)
{
    struct pwhash_pool *pool = arg;
    struct pwhash_job *job;
    while ((job = pwhash_next(pool))) {
        pwhash_run(pool, job);
        pthread_mutex_lock(&pool->lock);
        job->next = pool->done;
        pool->done = job;
        pthread_mutex_unlock(&pool->lock);
        lws_cancel_service(pool->ctx);
    }
    return NULL;
}

static int pwhash_make_dummy(struct pwhash_pool *pool)
{
    unsigned char pw[16];
    randombytes_buf(pw, sizeof pw);
    return crypto_pwhash_str(pool->dummy_hash, (const char *)pw, sizeof pw,
                             pool->opslimit, pool->memlimit);
}

struct pwhash_pool *pwhash_pool_new(struct lws_context *ctx, int threads, int max_queued,
                                    enum pwhash_cost cost)
{
    struct pwhash_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->ctx = ctx;
    pwhash_set_cost(pool, cost);
    pool->max_queued = max_queued;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->threads = calloc((size_t)threads, sizeof *pool->threads);
    if (!pool->threads || pwhash_make_dummy(pool) != 0) {
        pwhash_pool_free(pool);
        return NULL;
    }
    for (; pool->nthreads < threads; pool->nthreads++)
        if (pthread_create(&pool->threads[pool->nthreads], NULL, pwhash_worker, pool) != 0) {
            pwhash_pool_free(pool);
            return NULL;
        }
    return pool;
}

static void pwhash_free_list(struct pwhash_job *job)
{
    while (job) {
        struct pwhash_job *next = job->next;
        sodium_memzero(job->password, sizeof job->password);
        free(job);
        job = next;
    }
}

void pwhash_pool_stop(struct pwhash_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pool->nthreads = 0;
}

void pwhash_pool_free(struct pwhash_pool *pool)
{
    if (!pool)
        return;
    pwhash_pool_stop(pool);
    pwhash_free_list(pool->todo_head);
    pwhash_free_list(pool->done);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
    free(pool->threads);
    free(pool);
}

const char *pwhash_pool_dummy_hash(const struct pwhash_pool *pool)
{
    return pool->dummy_hash;
}

int pwhash_submit(struct pwhash_pool *pool, struct pwhash_job *job)
{
    int rc = -1;
    pthread_mutex_lock(&pool->lock);
    if (pool->queued < pool->max_queued) {
        job->next = NULL;
        if (pool->todo_tail)
            pool->todo_tail->next = job;
        else
            pool->todo_head = job;
        pool->todo_tail = job;
        pool->queued++;
        pthread_cond_signal(&pool->cond);
        rc = 0;
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

void pwhash_pool_drain(struct pwhash_pool *pool,
                       void (*done)(struct pwhash_job *job, void *arg), void *arg)
{
    pthread_mutex_lock(&pool->lock);
    struct pwhash_job *list = pool->done;
    pool->done = NULL;
    pthread_mutex_unlock(&pool->lock);
    /* The list is newest first; hand jobs back oldest first. */
    struct pwhash_job *rev = NULL;
    while (list) {
        struct pwhash_job *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct pwhash_job *next = rev->next;
        pthread_mutex_lock(&pool->lock);
        pool->queued--;
        pthread_mutex_unlock(&pool->lock);
        done(rev, arg);
        rev = next;
    }
}
