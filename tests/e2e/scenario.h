/* scenario.h — the checks and small steps the end-to-end scenarios share
 * (test_failover.c, test_reliability.c, test_cluster.c, test_chat.c,
 * test_bank.c, test_security.c, test_session_end.c): reading events and the
 * clients' stderr lines, typing numbered lines, waiting for
 * acknowledgements, starting a server with its users, and checking that a
 * client shows exactly the server's feed. Built on harness.h; every wait is a
 * deadline and every failure goes through CHECK. */
#ifndef E2E_SCENARIO_H
#define E2E_SCENARIO_H

#include "harness.h"

#define PW "correct horse battery"       /* every scenario user's password */
#define PW_ALICE "alice's secret phrase"  /* start_alice_bob's two users' */
#define PW_BOB   "bob's secret phrase"

/* ---- time ---------------------------------------------------------------- */
/* Starts the clock took() reads (a test's setup calls it). */
void took_start(void);
/* Prints "    name: 1.2 s" since took_start(). */
void took(const char *name);
/* Pumps every child's pipes until time t: for pacing, and for windows whose
 * point is that time passes (a stall, a hold). */
void pump_until(int64_t t);
/* One pump: returns when anything happened or at deadline (wait loops). */
void pump_upto(int64_t deadline);

/* ---- events -------------------------------------------------------------- */
/* String field k of o, "" when absent. */
const char *ev_str(const json_t *o, const char *k);
/* Integer field k of o, -1 when absent or not an integer. */
json_int_t ev_int(const json_t *o, const char *k);
/* Prints "what (N events):" and one event per line to stderr. */
void print_events(const char *what, const json_t *evs);
/* Alerts of kind (NULL: any) for transfer tid (< 0: any) among events. */
int is_alert(const json_t *ev, const char *kind, json_int_t tid);
size_t count_alerts(const json_t *events, const char *kind, json_int_t tid);

/* ---- a client's stderr lines ---------------------------------------------- */
/* Does c's stderr, from byte off on, contain needle? */
int err_has_from(const struct h_proc *c, size_t off, const char *needle);
/* Waits for needle on c's stderr from off on; fails saying why it was due. */
void wait_err_from(struct h_proc *c, size_t off, const char *needle, int64_t dl, const char *why);
/* Calls fn on every complete JSON object line of c's stderr from byte off
 * on; stops when fn returns non-zero and returns that. */
int each_err_line(const struct h_proc *c, size_t off, int (*fn)(json_t *j, void *arg), void *arg);
/* Waits until c has read everything written to its stdin so far (its stdin
 * pipe is empty): the lines typed are in its hands. */
void wait_stdin_read(struct h_proc *c, int64_t dl);

/* ---- acknowledgements ------------------------------------------------------ */
/* c's {"ack":CMID,"id":N} lines as an object CMID -> N. Fails if a line has
 * no integer id or a message is acknowledged twice (the client settles a
 * message once: core_ack). */
json_t *acks_of(const struct h_proc *c);
size_t count_acks(const struct h_proc *c);
/* Waits until c acknowledged n messages; fails unless exactly n. */
void wait_acks(struct h_proc *c, size_t n, int64_t dl);

/* ---- typing ---------------------------------------------------------------- */
/* A client that types numbered lines "<tag> #<i>". */
struct sender {
    struct h_proc *c;
    const char *user;
    char tag[48];
    int sent;
};
void send_next(struct sender *s);
/* Every sender types a line every every_ms for ms. */
void send_for(struct sender *ss, int n, int ms, int every_ms);

/* ---- the server and its users -------------------------------------------- */
/* Starts chatd with extra (may be NULL), registers alice and bob with
 * PW_ALICE and PW_BOB and logs alice in (token into alice) and bob too
 * unless bob is NULL. */
void start_alice_bob(struct h_server *s, const char *const *extra, char *alice, char *bob);
/* The same on a server already running at port (one of several sharing a
 * database, say). */
void alice_bob_on(int port, char *alice, char *bob);
/* Starts chatd, registers alice and bob with PW and logs bob in (token
 * into bob): the usual opening of a scenario where alice is a client. */
void start_with_bob(struct h_server *s, char bob[65]);

/* ---- checks ---------------------------------------------------------------- */
/* Mismatches in the current test: each check that finds one prints it and
 * counts it (scenario_mismatches++), and the test fails at its end
 * (END_CHECKS), so one run lists every request not answered as specified. */
extern int scenario_mismatches;
#define END_CHECKS()                                                          \
    do {                                                                      \
        int n_ = scenario_mismatches;                                         \
        scenario_mismatches = 0;                                              \
        CHECK(n_ == 0, "%d request(s) not answered as specified (see MISMATCH lines above)", n_); \
    } while (0)

/* Registers every user of the NULL-terminated list with password PW. */
void register_users(const struct h_server *s, const char *const *users);
/* The lines "<tag> #1".."<tag> #n" appear in feed exactly once each, in
 * order, from user. */
void check_sent_once(const json_t *feed, const char *user, const char *tag, int n);
/* c printed exactly the events of feed, in order (whole objects equal),
 * and nothing on stdout that is not JSON. */
void check_same_as_feed(struct h_proc *c, const json_t *feed, int64_t dl);
/* The whole feed of the token's user over HTTP, page by page (new reference). */
json_t *feed_all(int port, const char *token);

#endif
