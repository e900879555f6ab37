/* transfers.h — the mock bank's rules. A transfer is accepted at once (pending,
 * idempotent per sender and key), then moved pending -> processing ->
 * completed | failed on timers, each step one store transaction together
 * with the alert events it emits. Unfinished transfers are picked up again
 * when the server starts, so none is lost or done twice. Every store call
 * is asynchronous (store.h): outcomes come through completions. */
#ifndef CHAT_TRANSFERS_H
#define CHAT_TRANSFERS_H

#include <stdint.h>

#include "store.h"

struct server;
struct transfers;

enum transfers_rc {
    TRANSFERS_CREATED = 0,     /* a new transfer */
    TRANSFERS_REPEATED,        /* same key, same parameters: the first transfer */
    TRANSFERS_KEY_MISMATCH,    /* same key, other parameters */
    TRANSFERS_NO_RECIPIENT,
    TRANSFERS_TO_SELF,
    TRANSFERS_ERROR,
    TRANSFERS_UNAVAILABLE,     /* the database is gone or too slow: retry (same key) */
};

struct transfers *transfers_new(struct server *srv, int delay_ms);
/* Schedules every pending or processing transfer found in the store (the
 * read completes later on PostgreSQL; retried every second until it
 * succeeds) and, on a shared store, the sweep for orphaned ones. 0. */
int transfers_resume(struct transfers *tr);
/* Steps on their way are disowned: their transactions roll back, and a
 * submit on its way is answered TRANSFERS_UNAVAILABLE. */
void transfers_free(struct transfers *tr);

/* How a submit ended: t (valid during the call) is the transfer for
 * CREATED and REPEATED (the first one's), else NULL. */
typedef void (*transfers_done_fn)(void *arg, enum transfers_rc rc, const struct store_transfer *t);
/* Accepts a transfer of amount_cents from user from_id to the user named
 * to. done(arg, ...) is called exactly once, before this returns or later:
 * if arg can go away first, make it a ticket its owner can disown. to and
 * key are copied. */
void transfers_submit(struct transfers *tr, int64_t from_id, const char *to, int64_t amount_cents,
                      const char *key, transfers_done_fn done, void *arg);

#endif
