/* polling.h — the machinery short and long polling share: a loop of
 * GET /api/v1/events requests and a sender that POSTs the outbox one message
 * at a time, both retrying with backoff. The two transports differ only in
 * the hold they ask for (wait_s) and the pause between polls (interval_ms). */
#ifndef CHAT_POLLING_H
#define CHAT_POLLING_H

struct transport_env;
struct poller;

/* wait_s: server-side hold (0 = answer at once). interval_ms: the period
 * of polls that came back with less than a full page (0 = poll again at once). */
struct poller *poller_new(const struct transport_env *env, int wait_s, int interval_ms);
/* Only the sender (the SSE transport's sends): no polls, and the
 * connection state is left to the stream. */
struct poller *poller_new_sender(const struct transport_env *env);
void poller_free(struct poller *p);
int poller_start(struct poller *p);
void poller_outbox_changed(struct poller *p);

#endif
