/* pwhash.h — argon2id password hashing off the event loop. A small pool of
 * threads runs crypto_pwhash_str / _verify; finished jobs are handed back to
 * the lws thread through lws_cancel_service and pwhash_pool_drain. The pool
 * bounds both the threads and the queued jobs, so logins cannot exhaust the
 * CPU or memory. */
#ifndef CHAT_PWHASH_H
#define CHAT_PWHASH_H

#include <sodium.h>
#include <stdint.h>

#include "protocol.h"

enum pwhash_kind { PWHASH_HASH, PWHASH_VERIFY };

/* The cost of new hashes: libsodium's INTERACTIVE (64 MiB, t=2), or its
 * MIN, which only tests may use (chatd --pwhash-cost min), as they log in
 * hundreds of users on a shared machine. A hash string names its own
 * parameters, so either pool verifies either kind. */
enum pwhash_cost { PWHASH_COST_INTERACTIVE, PWHASH_COST_MIN };
/* "interactive" or "min" into *cost; -1 for anything else. */
int pwhash_cost_parse(const char *name, enum pwhash_cost *cost);

struct pwhash_job {
    struct pwhash_job *next;           /* pool-internal queue link */
    enum pwhash_kind kind;
    char    password[PROTO_PASSWORD_MAX + 1];  /* wiped once used */
    char    hash[crypto_pwhash_STRBYTES];      /* in for VERIFY, out for HASH */
    int     ok;                        /* result: hashed / password matched */
    /* Owner's context; the workers never touch these. */
    void   *owner;                     /* NULL once the requester went away */
    char    user[PROTO_USER_MAX + 1];
    int64_t user_id;                   /* 0 for an unknown user (VERIFY) */
};

struct pwhash_pool;
struct lws_context;

/* New hashes, and the dummy hash, cost cost. */
struct pwhash_pool *pwhash_pool_new(struct lws_context *ctx, int threads, int max_queued,
                                    enum pwhash_cost cost);
/* Stops and joins the workers; unfinished jobs stay owned by the pool until
 * pwhash_pool_free, so owners may still clear job->owner in between. */
void pwhash_pool_stop(struct pwhash_pool *pool);
void pwhash_pool_free(struct pwhash_pool *pool);
/* A hash of a random password at the pool's cost, verified against for
 * unknown users so that a login answers in the same time whether or not the
 * user exists. */
const char *pwhash_pool_dummy_hash(const struct pwhash_pool *pool);
/* Takes ownership of job. -1 (job untouched, still the caller's) if the queue is full. */
int pwhash_submit(struct pwhash_pool *pool, struct pwhash_job *job);
/* On the lws thread: calls done(job, arg) for each finished job; done owns it. */
void pwhash_pool_drain(struct pwhash_pool *pool,
                       void (*done)(struct pwhash_job *job, void *arg), void *arg);

#endif
