/* test_core.c — unit tests of the client core (client/core.c): cursor and
 * exactly-once delivery, the outbox (order, ack, resend keeps the
 * client_msg_id, refusal), state reporting and the latency median. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define MAX_SEEN 64

/* What the front end was told. */
struct front_seen {
    int64_t ids[MAX_SEEN];
    int n_events;
    char acks[MAX_SEEN][40];
    int64_t ack_ids[MAX_SEEN];
    int n_acks;
    char last_error[600];
    int n_errors;
    char rejected[40];           /* the last client_msg_id refused */
    enum core_state states[MAX_SEEN];
    unsigned retry[MAX_SEEN];
    int n_states;
    int64_t now;
};

static void on_event(void *arg, const json_t *ev)
{
    struct front_seen *s = arg;
    if (s->n_events < MAX_SEEN)
        s->ids[s->n_events] = json_integer_value(json_object_get(ev, "id"));
    s->n_events++;
}

static void on_ack(void *arg, const char *id, int64_t eid)
{
    struct front_seen *s = arg;
    if (s->n_acks >= MAX_SEEN)
        fail_msg("too many acks");
    snprintf(s->acks[s->n_acks], sizeof s->acks[0], "%s", id);
    s->ack_ids[s->n_acks++] = eid;
}

static void on_error(void *arg, const char *text)
{
    struct front_seen *s = arg;
    snprintf(s->last_error, sizeof s->last_error, "%s", text);
    s->n_errors++;
}

static void on_reject(void *arg, const char *id, const char *why)
{
    struct front_seen *s = arg;
    (void)why;
    snprintf(s->rejected, sizeof s->rejected, "%s", id);
}

static void on_state(void *arg, enum core_state st, unsigned retry_ms)
{
    struct front_seen *s = arg;
    if (s->n_states >= MAX_SEEN)
        fail_msg("too many states");
    s->states[s->n_states] = st;
    s->retry[s->n_states++] = retry_ms;
}

static int ephemerals;

static void on_ephemeral(void *arg, const json_t *item)
{
    (void)arg;
    (void)item;
    ephemerals++;
}

static int64_t fake_now(void *arg)
{
    return ((struct front_seen *)arg)->now;
}

struct fixture {
    struct front_seen seen;
    struct core *core;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    struct core_callbacks cb = {
        .on_event = on_event, .on_state = on_state, .on_ack = on_ack,
        .on_error = on_error, .on_reject = on_reject, .on_ephemeral = on_ephemeral,
        .arg = &f.seen,
    };
    ephemerals = 0;
    f.core = core_new(&cb);
    assert_non_null(f.core);
    core_set_clock(f.core, fake_now, &f.seen);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    core_free(f->core);
    return 0;
}

static int deliver(struct core *c, int64_t id, int64_t ts)
{
    json_t *ev = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "type", "chat",
                           "ts", (json_int_t)ts, "room", "general", "from", "bob", "body", "x");
    int r = core_deliver(c, ev);
    json_decref(ev);
    return r;
}

/* ---- cursor and delivery ---- */

static void test_delivers_in_order_and_advances_cursor(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(core_cursor(f->core), 0);
    assert_int_equal(deliver(f->core, 3, 1), 1);
    assert_int_equal(deliver(f->core, 5, 1), 1);
    assert_int_equal(deliver(f->core, 9, 1), 1);
    assert_int_equal(f->seen.n_events, 3);
    assert_int_equal(f->seen.ids[0], 3);
    assert_int_equal(f->seen.ids[1], 5);
    assert_int_equal(f->seen.ids[2], 9);
    assert_int_equal(core_cursor(f->core), 9);
}

static void test_drops_duplicates(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(deliver(f->core, 4, 1), 1);
    assert_int_equal(deliver(f->core, 4, 1), 0);
    assert_int_equal(deliver(f->core, 4, 1), 0);
    assert_int_equal(f->seen.n_events, 1);
    struct core_stats st;
    core_get_stats(f->core, &st);
    assert_int_equal(st.events, 1);
    assert_int_equal(st.dropped, 2);
}

static void test_drops_older_ids(void **state)
{
    struct fixture *f = *state;
    deliver(f->core, 10, 1);
    assert_int_equal(deliver(f->core, 7, 1), 0);
    assert_int_equal(deliver(f->core, 1, 1), 0);
    assert_int_equal(core_cursor(f->core), 10);
    assert_int_equal(deliver(f->core, 11, 1), 1);
    assert_int_equal(f->seen.n_events, 2);
    assert_int_equal(f->seen.ids[1], 11);
}

/* A resumed stream overlaps what was shown: only the new part is shown. */
static void test_overlapping_replay_shows_each_once(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 5; i++)
        deliver(f->core, i, 1);
    for (int i = 3; i <= 8; i++)
        deliver(f->core, i, 1);
    assert_int_equal(f->seen.n_events, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f->seen.ids[i], i + 1);
}

static void test_rejects_malformed_events(void **state)
{
    struct fixture *f = *state;
    json_t *no_id = json_pack("{s:s}", "type", "chat");
    json_t *zero = json_pack("{s:i,s:s}", "id", 0, "type", "chat");
    json_t *str_id = json_pack("{s:s,s:s}", "id", "7", "type", "chat");
    json_t *no_type = json_pack("{s:i}", "id", 7);
    assert_int_equal(core_deliver(f->core, no_id), -1);
    assert_int_equal(core_deliver(f->core, zero), -1);
    assert_int_equal(core_deliver(f->core, str_id), -1);
    assert_int_equal(core_deliver(f->core, no_type), -1);
    assert_int_equal(core_deliver(f->core, NULL), -1);
    assert_int_equal(f->seen.n_events, 0);
    assert_int_equal(core_cursor(f->core), 0);
    json_decref(no_id);
    json_decref(zero);
    json_decref(str_id);
    json_decref(no_type);
}

/* ---- outbox ---- */

static void test_outbox_keeps_order_and_acks_remove(void **state)
{
    struct fixture *f = *state;
    char a[40], b[40], c[40];
    snprintf(a, sizeof a, "%s", core_send(f->core, "general", "first"));
    snprintf(b, sizeof b, "%s", core_send(f->core, "general", "second"));
    snprintf(c, sizeof c, "%s", core_send(f->core, "general", "third"));
    assert_int_equal(core_outbox_len(f->core), 3);
    assert_string_equal(core_outbox_head(f->core)->body, "first");
    assert_string_equal(core_outbox_head(f->core)->client_msg_id, a);

    assert_int_equal(core_ack(f->core, a, 21), 0);
    assert_int_equal(core_outbox_len(f->core), 2);
    assert_string_equal(core_outbox_head(f->core)->body, "second");
    assert_int_equal(f->seen.n_acks, 1);
    assert_string_equal(f->seen.acks[0], a);
    assert_int_equal(f->seen.ack_ids[0], 21);

    /* acks out of order still remove the right one */
    assert_int_equal(core_ack(f->core, c, 23), 0);
    assert_string_equal(core_outbox_head(f->core)->client_msg_id, b);
    assert_int_equal(core_ack(f->core, b, 22), 0);
    assert_int_equal(core_outbox_len(f->core), 0);
    assert_null(core_outbox_head(f->core));
}

static void test_client_msg_ids_are_128_bit_hex_and_distinct(void **state)
{
    struct fixture *f = *state;
    char ids[20][40];
    for (int i = 0; i < 20; i++) {
        const char *id = core_send(f->core, "general", "x");
        assert_non_null(id);
        assert_int_equal(strlen(id), 32);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
        snprintf(ids[i], sizeof ids[i], "%s", id);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[k], ids[i]);
    }
}

/* The first 12 hex digits are the wall clock in ms: one sender's ids never
 * go back in time, so the server's (sender, client_msg_id) index takes
 * them at the end of that sender's range. */
static void test_client_msg_ids_start_with_the_time(void **state)
{
    struct fixture *f = *state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long before = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char prev[13] = "";
    for (int i = 0; i < 50; i++) {
        const char *id = core_send(f->core, "general", "x");
        assert_non_null(id);
        char stamp[13];
        memcpy(stamp, id, 12);
        stamp[12] = '\0';
        long long ms = strtoll(stamp, NULL, 16);
        assert_true(ms >= before && ms <= before + 60000);
        assert_true(strcmp(stamp, prev) >= 0);
        memcpy(prev, stamp, sizeof prev);
    }
}

/* A new connection sends everything unacked again, with the same ids. */
static void test_resend_on_new_connection_keeps_ids(void **state)
{
    struct fixture *f = *state;
    char a[40], b[40];
    snprintf(a, sizeof a, "%s", core_send(f->core, "general", "one"));
    snprintf(b, sizeof b, "%s", core_send(f->core, "general", "two"));

    const struct core_msg *m = core_outbox_take(f->core, 1);
    assert_string_equal(m->client_msg_id, a);
    m = core_outbox_take(f->core, 1);
    assert_string_equal(m->client_msg_id, b);
    assert_null(core_outbox_take(f->core, 1));   /* all sent on connection 1 */

    /* connection 1 drops before any ack; connection 2 resends both */
    m = core_outbox_take(f->core, 2);
    assert_string_equal(m->client_msg_id, a);
    assert_string_equal(m->body, "one");
    assert_int_equal(m->sends, 2);
    m = core_outbox_take(f->core, 2);
    assert_string_equal(m->client_msg_id, b);
    assert_null(core_outbox_take(f->core, 2));

    /* the server acks both once; a repeated ack is ignored */
    assert_int_equal(core_ack(f->core, a, 5), 0);
    assert_int_equal(core_ack(f->core, a, 5), -1);
    assert_int_equal(core_ack(f->core, b, 6), 0);
    assert_int_equal(f->seen.n_acks, 2);
}

static void test_http_style_resend_keeps_head(void **state)
{
    struct fixture *f = *state;
    char a[40];
    snprintf(a, sizeof a, "%s", core_send(f->core, "general", "one"));
    core_send(f->core, "general", "two");
    core_outbox_sent(f->core, a);
    core_outbox_sent(f->core, a);            /* failed once, sent again */
    assert_string_equal(core_outbox_head(f->core)->client_msg_id, a);
    assert_int_equal(core_outbox_head(f->core)->sends, 2);
}

static void test_unknown_ack_ignored(void **state)
{
    struct fixture *f = *state;
    core_send(f->core, "general", "one");
    assert_int_equal(core_ack(f->core, "00000000000000000000000000000000", 3), -1);
    assert_int_equal(core_ack(f->core, NULL, 3), -1);
    assert_int_equal(core_outbox_len(f->core), 1);
    assert_int_equal(f->seen.n_acks, 0);
}

static void test_reject_drops_and_reports(void **state)
{
    struct fixture *f = *state;
    char a[40];
    snprintf(a, sizeof a, "%s", core_send(f->core, "general", "one"));
    core_send(f->core, "general", "two");
    assert_int_equal(core_reject(f->core, a, "too long"), 0);
    assert_int_equal(core_outbox_len(f->core), 1);
    assert_string_equal(core_outbox_head(f->core)->body, "two");
    assert_int_equal(f->seen.n_errors, 1);
    assert_non_null(strstr(f->seen.last_error, "too long"));
    assert_string_equal(f->seen.rejected, a);      /* the front end can mark its line */
    assert_int_equal(core_reject(f->core, a, "again"), -1);
}

static void test_send_validates(void **state)
{
    struct fixture *f = *state;
    char big[4098];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(core_send(f->core, "general", ""));
    assert_null(core_send(f->core, "general", big));
    assert_null(core_send(f->core, "general", "\xff\xfe"));
    assert_null(core_send(f->core, "Bad Room", "hi"));
    assert_int_equal(f->seen.n_errors, 4);
    assert_int_equal(core_outbox_len(f->core), 0);
    big[4096] = '\0';                        /* exactly 4096 bytes is fine */
    assert_non_null(core_send(f->core, "general", big));
}

static void hook(void *arg)
{
    (*(int *)arg)++;
}

static void test_outbox_hook_called_on_send(void **state)
{
    struct fixture *f = *state;
    int hook_calls = 0;
    core_set_outbox_hook(f->core, hook, &hook_calls);
    core_send(f->core, "general", "one");
    core_send(f->core, "general", "");
    assert_int_equal(hook_calls, 1);
}

/* ---- state, errors, counters ---- */

static void test_state_reports_changes_and_fatal_is_final(void **state)
{
    struct fixture *f = *state;
    core_set_state(f->core, CORE_CONNECTING, 0);     /* first: reported */
    core_set_state(f->core, CORE_CONNECTING, 0);     /* no change: not */
    core_set_state(f->core, CORE_CONNECTED, 0);
    core_set_state(f->core, CORE_RECONNECTING, 250);
    core_set_state(f->core, CORE_RECONNECTING, 500); /* each retry reported */
    assert_int_equal(f->seen.n_states, 4);
    assert_int_equal(f->seen.states[0], CORE_CONNECTING);
    assert_int_equal(f->seen.states[3], CORE_RECONNECTING);
    assert_int_equal(f->seen.retry[3], 500);
    core_fatal(f->core, 2, "token rejected");
    assert_int_equal(core_state(f->core), CORE_OFFLINE);
    assert_int_equal(core_exit_code(f->core), 2);
    assert_string_equal(f->seen.last_error, "token rejected");
    core_set_state(f->core, CORE_CONNECTED, 0);
    assert_int_equal(core_state(f->core), CORE_OFFLINE);
}

static void test_latency_last_and_median(void **state)
{
    struct fixture *f = *state;
    struct core_stats st;
    core_get_stats(f->core, &st);
    assert_int_equal(st.have_latency, 0);
    f->seen.now = 1000;
    deliver(f->core, 1, 990);    /* 10 */
    deliver(f->core, 2, 970);    /* 30 */
    deliver(f->core, 3, 980);    /* 20 */
    core_get_stats(f->core, &st);
    assert_int_equal(st.have_latency, 1);
    assert_int_equal(st.latency_ms, 20);
    assert_int_equal(st.latency_median_ms, 20);
    deliver(f->core, 4, 900);    /* 100: median of 10,20,30,100 = 25 */
    core_get_stats(f->core, &st);
    assert_int_equal(st.latency_ms, 100);
    assert_int_equal(st.latency_median_ms, 25);
    deliver(f->core, 4, 0);      /* duplicate: no sample */
    deliver(f->core, 5, 1500);   /* clock skew: clamped to 0 */
    core_get_stats(f->core, &st);
    assert_int_equal(st.latency_ms, 0);
    assert_int_equal(st.latency_median_ms, 20);
}

/* Events written before the client started (a replayed history) are shown
 * but say nothing about delivery latency; a new connection serial never
 * repeats one handed out before, whatever the transport. */
static void test_history_and_serials(void **state)
{
    struct fixture *f = *state;
    struct core_stats st;
    f->seen.now = 5000;
    core_set_clock(f->core, fake_now, &f->seen);      /* the client starts at 5000 */
    deliver(f->core, 1, 100);
    deliver(f->core, 2, 4999);
    core_get_stats(f->core, &st);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.have_latency, 0);
    f->seen.now = 5030;
    deliver(f->core, 3, 5010);
    core_get_stats(f->core, &st);
    assert_int_equal(st.latency_ms, 20);
    assert_int_equal(st.latency_median_ms, 20);
    unsigned a = core_connection_serial(f->core), b = core_connection_serial(f->core);
    assert_true(a != 0 && b != 0 && a != b);
}

static void test_latency_window_forgets_old_samples(void **state)
{
    struct fixture *f = *state;
    struct core_stats st;
    f->seen.now = 100000;
    int64_t id = 1;
    for (int i = 0; i < CORE_LATENCY_WINDOW; i++)
        deliver(f->core, id++, f->seen.now - 5000);
    for (int i = 0; i < CORE_LATENCY_WINDOW; i++)
        deliver(f->core, id++, f->seen.now - 7);
    core_get_stats(f->core, &st);
    assert_int_equal(st.latency_median_ms, 7);
}

static void test_counters(void **state)
{
    struct fixture *f = *state;
    struct core_stats st;
    core_count_request(f->core);
    core_count_request(f->core);
    core_count_bytes(f->core, 100, 40);
    core_count_bytes(f->core, 1, 2);
    core_get_stats(f->core, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.bytes_in, 101);
    assert_int_equal(st.bytes_out, 42);
}

/* ---- protocol v1.1 ---- */

/* The start: history up to the cursor C is shown, then the cursor is C, so
 * the live feed's events at or below C (an overlap) are dropped and the
 * first above it shown; the cursor never goes back. */
static void test_start_cursor_meets_the_feed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(deliver(f->core, 10, 1), 1);       /* history */
    assert_int_equal(deliver(f->core, 20, 1), 1);
    core_set_cursor(f->core, 25);                       /* C */
    assert_int_equal(deliver(f->core, 22, 1), 0);       /* an overlap: dropped */
    assert_int_equal(deliver(f->core, 26, 1), 1);
    core_set_cursor(f->core, 5);
    assert_int_equal(core_cursor(f->core), 26);
}

/* Ephemeral items are passed on only when well formed, and move nothing. */
static void test_ephemeral_items_are_checked(void **state)
{
    struct fixture *f = *state;
    json_t *ok = json_pack("{s:s,s:s,s:b}", "type", "presence", "user", "bob", "online", 1);
    json_t *bad = json_pack("{s:s,s:s,s:s}", "type", "typing", "room", "Bad Room", "user", "bob");
    assert_int_equal(core_ephemeral(f->core, ok), 0);
    assert_int_equal(core_ephemeral(f->core, bad), -1);
    assert_int_equal(ephemerals, 1);
    assert_int_equal(core_cursor(f->core), 0);
    json_decref(ok);
    json_decref(bad);
}

/* A direct message goes to a user, not a room. */
static void test_direct_message_has_a_recipient(void **state)
{
    struct fixture *f = *state;
    assert_non_null(core_send_to(f->core, "bob", "psst"));
    const struct core_msg *m = core_outbox_head(f->core);
    assert_string_equal(m->to, "bob");
    assert_string_equal(m->room, "");
    assert_null(core_send_to(f->core, "Bob", "psst"));
    assert_non_null(core_send(f->core, "rust", "hi"));
    assert_int_equal(core_outbox_len(f->core), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivers_in_order_and_advances_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_older_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlapping_replay_shows_each_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_malformed_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_keeps_order_and_acks_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_msg_ids_start_with_the_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_msg_ids_are_128_bit_hex_and_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_on_new_connection_keeps_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_style_resend_keeps_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ack_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_drops_and_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_validates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_hook_called_on_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_reports_changes_and_fatal_is_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_last_and_median, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_and_serials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_window_forgets_old_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_cursor_meets_the_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_items_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_message_has_a_recipient, setup, teardown),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
