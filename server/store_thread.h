/* store_thread.h — the writer thread of a backend without asynchronous
 * calls of its own (SQLite): one thread owns the connection while the
 * server serves, takes store.h's asynchronous requests from the event loop
 * in a queue, and hands their replies back through an eventfd the loop
 * watches (store_io_fd), so the loop never waits on the disk. store.c
 * forwards the store_io_* and asynchronous calls here. */
#ifndef CHAT_STORE_THREAD_H
#define CHAT_STORE_THREAD_H

#include "store.h"

struct store_thread;

/* Starts the thread for ops' connection impl (which stays the caller's:
 * closed after store_thread_free). NULL if it cannot (no memory, no
 * thread, no eventfd). */
struct store_thread *store_thread_new(const struct store_ops *ops, void *impl);
/* Lets the running request finish, joins the thread, then delivers what
 * has completed and answers everything still queued STORE_UNAVAILABLE (an
 * open transaction is rolled back). */
void store_thread_free(struct store_thread *th);

/* A synchronous call (startup, tools, tests) holds the connection between
 * these, so it never runs while the thread runs a request. Recursive:
 * store_begin locks until store_commit / store_rollback unlock. */
void store_thread_lock(struct store_thread *th);
void store_thread_unlock(struct store_thread *th);

/* store.h's asynchronous calls and the loop's side of them. */
void store_thread_call(struct store_thread *th, int64_t txn, enum store_call_kind kind,
                       const struct store_args *args, store_done_fn done, void *arg);
int64_t store_thread_txn_begin(struct store_thread *th, store_done_fn done, void *arg);
void store_thread_txn_end(struct store_thread *th, int64_t txn, int commit,
                          store_done_fn done, void *arg);
void store_thread_bound(struct store_thread *th, int max_requests, int64_t max_age_ms);
int store_thread_fd(struct store_thread *th);
void store_thread_on_close(struct store_thread *th, void (*cb)(void *arg), void *arg);
int store_thread_pending(struct store_thread *th);
void store_thread_service(struct store_thread *th);
int store_thread_health(struct store_thread *th, int64_t slow_ms, char *reason, size_t len);

/* Tests: 1 keeps the thread from starting its next request (one running
 * finishes), 0 lets it go on: how a test makes requests wait. */
void store_thread_hold(struct store_thread *th, int hold);

#endif
