/* transfer_log.h — your transfers as the feed has told of them, for
 * /transfers: one row per transfer (sent or received) in its latest state,
 * kept from the transfer alerts (transfer.pending ... transfer.received).
 * The feed is replayed from its start at every login, so this needs no
 * server endpoint of its own. Pure (jansson only), unit-tested in
 * tests/test_transfer_log.c. */
#ifndef CHAT_TRANSFER_LOG_H
#define CHAT_TRANSFER_LOG_H

#include <jansson.h>
#include <stddef.h>

#define TRANSFER_LOG_KEEP 200     /* the oldest rows go first */

struct transfer_log;
struct transfer_log *transfer_log_new(void);
void transfer_log_free(struct transfer_log *l);

/* An event from the feed; anything but a transfer alert is ignored. */
void transfer_log_add(struct transfer_log *l, const json_t *event);
/* The n newest transfers, newest first (by when first seen): [{"transfer_id","direction":"sent"|
 * "received","counterparty","amount_cents","state","reason"?}] (new ref). */
json_t *transfer_log_recent(const struct transfer_log *l, size_t n);
/* One row as a line for people: "#3 sent 25.00 to bob: completed". */
void transfer_log_row_text(const json_t *row, char *buf, size_t size);

#endif
