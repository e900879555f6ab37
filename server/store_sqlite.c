/* store_sqlite.c — the SQLite backend of store.h. Owns the database
 * connection: opening it with durable settings, applying the embedded schema
 * migrations (db/migrations, via migrations.h), and one prepared statement per
 * query. A write outside a transaction (store_begin, or the feed's
 * group-commit batch) runs in autocommit mode, so it is committed (and,
 * with synchronous=FULL, on stable storage) before the function returns;
 * inside one, at its commit.
 * Not thread-safe: one struct sq is used from the server's event loop only.
 * Callbacks given to events_after must not call back into the store. */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"

enum stmt_id {
    Q_USER_CREATE,
    Q_USER_GET,
    Q_SESSION_CREATE,
    Q_SESSION_LOOKUP,
    Q_SESSION_TOUCH,
    Q_SESSION_DELETE,
    Q_EVENT_INSERT,
    Q_EVENT_EXISTING,
    Q_EVENTS_AFTER,
    Q_EVENTS_ALL_AFTER,
    Q_LAST_EVENT_ID,
    Q_ACCOUNT_CREATE,
    Q_ACCOUNT_BALANCE,
    Q_ACCOUNT_ADD,
    Q_LEDGER_INSERT,
    Q_TRANSFER_INSERT,
    Q_TRANSFER_BY_KEY,
    Q_TRANSFER_GET,
    Q_TRANSFER_SET_STATUS,
    Q_TRANSFERS_UNFINISHED,
    Q_TRANSFERS_STALE,
    Q_COUNT
};

static const char *const SQL[Q_COUNT] = {
    [Q_USER_CREATE] =
        "INSERT INTO users(name, pwhash, created_ms) VALUES (?1, ?2, ?3)",
    [Q_USER_GET] =
        "SELECT id, pwhash FROM users WHERE name = ?1",
    [Q_SESSION_CREATE] =
        "INSERT INTO sessions(token_hash, user_id, created_ms, expires_ms, last_used_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?3)",
    [Q_SESSION_LOOKUP] =
        "SELECT s.user_id, u.name, s.last_used_ms, s.expires_ms"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = ?1 AND s.expires_ms > ?2",
    [Q_SESSION_TOUCH] =
        "UPDATE sessions SET last_used_ms = ?2 WHERE token_hash = ?1",
    [Q_SESSION_DELETE] =
        "DELETE FROM sessions WHERE token_hash = ?1",
    [Q_EVENT_INSERT] =
        "INSERT INTO events(ts_ms, type, recipient_id, sender_id, client_msg_id, payload)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        " ON CONFLICT(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL"
        " DO NOTHING",
    [Q_EVENT_EXISTING] =
        "SELECT id, ts_ms FROM events WHERE sender_id = ?1 AND client_msg_id = ?2",
    /* Two ordered ranges of index events_feed, merged (no sort, LIMIT stops
     * early); a single "IS NULL OR =" would sort every match in a temp b-tree. */
    [Q_EVENTS_AFTER] =
        "SELECT id, ts_ms, recipient_id, type, payload FROM events"
        " WHERE recipient_id IS NULL AND id > ?1"
        " UNION ALL"
        " SELECT id, ts_ms, recipient_id, type, payload FROM events"
        " WHERE recipient_id = ?2 AND id > ?1"
        " ORDER BY 1 LIMIT ?3",
    [Q_EVENTS_ALL_AFTER] =
        "SELECT id, ts_ms, recipient_id, type, payload FROM events"
        " WHERE id > ?1 ORDER BY id LIMIT ?2",
    [Q_LAST_EVENT_ID] =
        "SELECT COALESCE(MAX(id), 0) FROM events",
    [Q_ACCOUNT_CREATE] =
        "INSERT INTO accounts(user_id, balance_cents) VALUES (?1, 0)",
    [Q_ACCOUNT_BALANCE] =
        "SELECT balance_cents FROM accounts WHERE user_id = ?1",
    /* RETURNING gives the new balance for the ledger row; the CHECK on
     * balance_cents refuses an overdraft. */
    [Q_ACCOUNT_ADD] =
        "UPDATE accounts SET balance_cents = balance_cents + ?2 WHERE user_id = ?1"
        " RETURNING balance_cents",
    [Q_LEDGER_INSERT] =
        "INSERT INTO ledger(transfer_id, account_id, delta_cents, balance_after, ts_ms, memo)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_TRANSFER_INSERT] =
        "INSERT INTO transfers(from_id, to_id, amount_cents, idempotency_key, status,"
        " created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)"
        " ON CONFLICT(from_id, idempotency_key) DO NOTHING",
    [Q_TRANSFER_BY_KEY] =
        "SELECT id FROM transfers WHERE from_id = ?1 AND idempotency_key = ?2",
    [Q_TRANSFER_GET] =
        "SELECT t.id, t.from_id, t.to_id, t.amount_cents, f.name, r.name, t.status,"
        " COALESCE(t.reason, ''), t.created_ms, t.updated_ms"
        " FROM transfers t JOIN users f ON f.id = t.from_id JOIN users r ON r.id = t.to_id"
        " WHERE t.id = ?1",
    [Q_TRANSFER_SET_STATUS] =
        "UPDATE transfers SET status = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?1",
    [Q_TRANSFERS_UNFINISHED] =
        "SELECT id FROM transfers WHERE status IN ('pending', 'processing') ORDER BY id",
    [Q_TRANSFERS_STALE] =
        "SELECT id FROM transfers WHERE status IN ('pending', 'processing')"
        " AND updated_ms < ?1 ORDER BY id",
};

struct sq {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
};

/* Logs the connection's current error for operation `what`. */
static int fail(struct sq *s, const char *what)
{
    fprintf(stderr, "store: %s: %s\n", what, sqlite3_errmsg(s->db));
    return STORE_ERROR;
}

/* Makes a statement ready for its next use. */
static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* 0 stands for "none" in the API and is stored as NULL. */
static void bind_id_or_null(sqlite3_stmt *st, int col, int64_t v)
{
    if (v == 0)
        sqlite3_bind_null(st, col);
    else
        sqlite3_bind_int64(st, col, v);
}

/* Copies a text column into dst; a value that does not fit is an error
 * (a truncated password hash or name would be silently wrong). */
static int copy_text(sqlite3_stmt *st, int col, char *dst, size_t len, const char *what)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!t || n >= len) {
        fprintf(stderr, "store: %s: value does not fit (%zu bytes, buffer %zu)\n",
                what, n, len);
        return STORE_ERROR;
    }
    memcpy(dst, t, n + 1);
    return STORE_OK;
}

/* Maps the result of stepping an INSERT. */
static int insert_rc(struct sq *s, int rc, const char *what)
{
    if (rc == SQLITE_DONE)
        return STORE_OK;
    switch (sqlite3_extended_errcode(s->db)) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return STORE_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return STORE_NOT_FOUND;
    default:
        return fail(s, what);
    }
}

static void sq_close(void *impl)
{
    struct sq *s = impl;
    if (!s)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s);
}

/* Runs one PRAGMA that returns a single value and checks it against want
 * (NULL: any). journal_mode answers with the mode actually in effect. */
static int pragma(sqlite3 *db, const char *sql, const char *want1, const char *want2,
                  char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    const char *got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int ok = !want1 || (got && (!strcmp(got, want1) || (want2 && !strcmp(got, want2))));
    if (!ok)
        snprintf(err, errlen, "%s: got %s", sql, got ? got : "nothing");
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Durability and concurrency settings; per connection, so set at every open.
 * synchronous=FULL: under WAL, NORMAL fsyncs only at checkpoints, so the last
 * commits can vanish on power loss (not on a process crash). store.h promises
 * that a committed id is durable and may be announced: with NORMAL, a client
 * could see event N, the server lose power, and N be reissued to a different
 * message after restart (AUTOINCREMENT's counter rolls back with it). FULL
 * fsyncs the WAL at each commit; the feed's group commit (feed.c) makes that
 * one fsync per event-loop turn for chat sends. */
static int configure(sqlite3 *db, char *err, size_t errlen)
{
    if (pragma(db, "PRAGMA busy_timeout = 5000", NULL, NULL, err, errlen) ||
        /* ":memory:" databases cannot use WAL and report "memory". */
        pragma(db, "PRAGMA journal_mode = WAL", "wal", "memory", err, errlen) ||
        pragma(db, "PRAGMA synchronous = FULL", NULL, NULL, err, errlen) ||
        pragma(db, "PRAGMA synchronous", "2", NULL, err, errlen) ||
        pragma(db, "PRAGMA foreign_keys = ON", NULL, NULL, err, errlen) ||
        pragma(db, "PRAGMA foreign_keys", "1", NULL, err, errlen))
        return -1;
    return 0;
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    } else {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Applies migrations[i] for every i >= user_version, each together with
 * "user_version = i + 1" in one transaction: a crash leaves either both or
 * neither. BEGIN IMMEDIATE so two servers starting at once serialize. */
static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    int v;
    if (user_version(db, &v)) {
        snprintf(err, errlen, "reading user_version: %s", sqlite3_errmsg(db));
        return -1;
    }
    if (v < 0 || (size_t)v > MIGRATION_COUNT) {
        snprintf(err, errlen, "schema version %d is newer than this chatd (%zu)",
                 v, (size_t)MIGRATION_COUNT);
        return -1;
    }
    for (size_t i = (size_t)v; i < MIGRATION_COUNT; i++) {
        char setv[48];
        snprintf(setv, sizeof setv, "PRAGMA user_version = %zu", i + 1);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, MIGRATIONS[i], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, setv, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "migration %zu: %s", i + 1, sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

static void *sq_open(const char *location, char *err, size_t errlen)
{
    struct sq *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(location, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "open %s: %s", location,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sq_close(s);
        return NULL;
    }
    if (configure(s->db, err, errlen) || migrate(s->db, err, errlen)) {
        sq_close(s);
        return NULL;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->q[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "prepare %d: %s", i, sqlite3_errmsg(s->db));
            sq_close(s);
            return NULL;
        }
    }
    return s;
}

static int sq_begin(void *impl)
{
    struct sq *s = impl;
    return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
        ? STORE_OK : fail(s, "begin");
}

static int sq_commit(void *impl)
{
    struct sq *s = impl;
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return STORE_OK;
    int rc = fail(s, "commit");
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_rollback(void *impl)
{
    struct sq *s = impl;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_account_move(void *impl, int64_t user_id, int64_t delta_cents,
                           int64_t transfer_id, int64_t now_ms, const char *memo);

static int user_insert(struct sq *s, const char *name, const char *pwhash,
                       int64_t now_ms, int64_t *user_id)
{
    sqlite3_stmt *st = s->q[Q_USER_CREATE];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    int rc = insert_rc(s, sqlite3_step(st), "user_create");
    *user_id = sqlite3_last_insert_rowid(s->db);
    done(st);
    return rc;
}

static int account_insert(struct sq *s, int64_t user_id)
{
    sqlite3_stmt *st = s->q[Q_ACCOUNT_CREATE];
    sqlite3_bind_int64(st, 1, user_id);
    int rc = insert_rc(s, sqlite3_step(st), "account_create");
    done(st);
    return rc;
}

/* The user, its account and the opening balance's ledger row: all or none. */
static int sq_user_create(void *impl, const char *name, const char *pwhash,
                          int64_t now_ms, int64_t *user_id)
{
    struct sq *s = impl;
    int64_t id = 0;
    int rc = sq_begin(s);
    if (rc == STORE_OK)
        rc = user_insert(s, name, pwhash, now_ms, &id);
    if (rc == STORE_OK)
        rc = account_insert(s, id);
    if (rc == STORE_OK)
        rc = sq_account_move(s, id, STORE_OPENING_BALANCE_CENTS, 0, now_ms, "opening balance");
    if (rc == STORE_OK)
        rc = sq_commit(s);
    else
        sq_rollback(s);
    if (rc == STORE_OK && user_id)
        *user_id = id;
    return rc;
}

static int sq_user_get(void *impl, const char *name, int64_t *user_id,
                       char *pwhash, size_t pwhash_len)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_USER_GET];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (user_id)
            *user_id = sqlite3_column_int64(st, 0);
        rc = pwhash ? copy_text(st, 1, pwhash, pwhash_len, "user_get") : STORE_OK;
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "user_get");
    }
    done(st);
    return rc;
}

static int sq_session_create(void *impl, const char *token_hash, int64_t user_id,
                             int64_t now_ms, int64_t expires_ms)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_SESSION_CREATE];
    sqlite3_bind_text(st, 1, token_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, expires_ms);
    int rc = insert_rc(s, sqlite3_step(st), "session_create");
    done(st);
    return rc;
}

static int sq_session_lookup(void *impl, const char *token_hash, int64_t now_ms,
                             struct store_session *out)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_SESSION_LOOKUP];
    sqlite3_bind_text(st, 1, token_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->user_id = sqlite3_column_int64(st, 0);
        out->last_used_ms = sqlite3_column_int64(st, 2);
        out->expires_ms = sqlite3_column_int64(st, 3);
        rc = copy_text(st, 1, out->user, sizeof out->user, "session_lookup");
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "session_lookup");
    }
    done(st);
    return rc;
}

static int session_change(struct sq *s, enum stmt_id q, const char *token_hash, int64_t now_ms,
                          const char *what)
{
    sqlite3_stmt *st = s->q[q];
    sqlite3_bind_text(st, 1, token_hash, -1, SQLITE_STATIC);
    if (q == Q_SESSION_TOUCH)
        sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st);
    rc = rc != SQLITE_DONE ? fail(s, what) : sqlite3_changes(s->db) ? STORE_OK : STORE_NOT_FOUND;
    done(st);
    return rc;
}

static int sq_session_touch(void *impl, const char *token_hash, int64_t now_ms)
{
    return session_change(impl, Q_SESSION_TOUCH, token_hash, now_ms, "session_touch");
}

static int sq_session_delete(void *impl, const char *token_hash)
{
    return session_change(impl, Q_SESSION_DELETE, token_hash, 0, "session_delete");
}

/* Finds the event an earlier append stored under (sender_id, client_msg_id). */
static int existing_event(struct sq *s, const struct store_new_event *ev,
                          int64_t *id, int64_t *ts_ms)
{
    sqlite3_stmt *st = s->q[Q_EVENT_EXISTING];
    sqlite3_bind_int64(st, 1, ev->sender_id);
    sqlite3_bind_text(st, 2, ev->client_msg_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *ts_ms = sqlite3_column_int64(st, 1);
        rc = STORE_OK;
    } else if (rc == SQLITE_DONE) {
        fprintf(stderr, "store: event_append: conflict but no existing row\n");
        rc = STORE_ERROR;
    } else {
        rc = fail(s, "event_append lookup");
    }
    done(st);
    return rc;
}

static int sq_event_append(void *impl, const struct store_new_event *ev,
                           int64_t *id, int64_t *ts_ms, int *created)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_EVENT_INSERT];
    sqlite3_bind_int64(st, 1, ev->ts_ms);
    sqlite3_bind_text(st, 2, ev->type, -1, SQLITE_STATIC);
    bind_id_or_null(st, 3, ev->recipient_id);
    bind_id_or_null(st, 4, ev->sender_id);
    sqlite3_bind_text(st, 5, ev->client_msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->payload, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int inserted = rc == SQLITE_DONE && sqlite3_changes(s->db) > 0;
    int64_t rowid = sqlite3_last_insert_rowid(s->db);
    rc = rc == SQLITE_DONE ? STORE_OK : fail(s, "event_append");
    done(st);
    if (rc != STORE_OK)
        return rc;
    if (!inserted) /* DO NOTHING fired: a retry of an earlier send */
        rc = existing_event(s, ev, id, ts_ms);
    else {
        *id = rowid;
        *ts_ms = ev->ts_ms;
    }
    if (rc == STORE_OK)
        *created = inserted;
    return rc;
}

/* Steps st, calling cb for each row (id, ts_ms, recipient_id, type,
 * payload) until it asks to stop; resets st. A NULL recipient reads as 0. */
static int emit_events(struct sq *s, sqlite3_stmt *st, store_event_cb cb, void *arg,
                       const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_event e = {
            .id = sqlite3_column_int64(st, 0),
            .ts_ms = sqlite3_column_int64(st, 1),
            .recipient_id = sqlite3_column_int64(st, 2),
            .type = (const char *)sqlite3_column_text(st, 3),
            .payload = (const char *)sqlite3_column_text(st, 4),
        };
        if (cb(arg, &e))
            break;
    }
    rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? STORE_OK : fail(s, what);
    done(st);
    return rc;
}

static int sq_events_after(void *impl, int64_t user_id, int64_t after, int limit,
                           store_event_cb cb, void *arg)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_EVENTS_AFTER];
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int(st, 3, limit < 1 ? 1 : limit);
    return emit_events(s, st, cb, arg, "events_after");
}

static int sq_events_all_after(void *impl, int64_t after, int limit,
                               store_event_cb cb, void *arg)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_EVENTS_ALL_AFTER];
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, limit < 1 ? 1 : limit);
    return emit_events(s, st, cb, arg, "events_all_after");
}

static int sq_last_event_id(void *impl, int64_t *id)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_LAST_EVENT_ID];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    } else {
        rc = fail(s, "last_event_id");
    }
    done(st);
    return rc;
}

/* ---- the bank ---- */

static int sq_account_balance(void *impl, int64_t user_id, int64_t *cents)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_ACCOUNT_BALANCE];
    sqlite3_bind_int64(st, 1, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *cents = sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "account_balance");
    }
    done(st);
    return rc;
}

static int ledger_insert(struct sq *s, int64_t transfer_id, int64_t user_id, int64_t delta,
                         int64_t balance_after, int64_t now_ms, const char *memo)
{
    sqlite3_stmt *st = s->q[Q_LEDGER_INSERT];
    bind_id_or_null(st, 1, transfer_id);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, delta);
    sqlite3_bind_int64(st, 4, balance_after);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_text(st, 6, memo, -1, SQLITE_STATIC);
    int rc = insert_rc(s, sqlite3_step(st), "ledger_insert");
    done(st);
    return rc;
}

static int sq_account_move(void *impl, int64_t user_id, int64_t delta_cents,
                           int64_t transfer_id, int64_t now_ms, const char *memo)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_ACCOUNT_ADD];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, delta_cents);
    int step = sqlite3_step(st);
    int64_t after = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int rc;
    if (step == SQLITE_ROW)
        rc = STORE_OK;
    else if (step == SQLITE_DONE)
        rc = STORE_NOT_FOUND;
    else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_CHECK)
        rc = STORE_CONSTRAINT;
    else
        rc = fail(s, "account_move");
    done(st);
    if (rc != STORE_OK)
        return rc;
    return ledger_insert(s, transfer_id, user_id, delta_cents, after, now_ms, memo);
}

static int transfer_by_key(struct sq *s, int64_t from_id, const char *key, int64_t *id)
{
    sqlite3_stmt *st = s->q[Q_TRANSFER_BY_KEY];
    sqlite3_bind_int64(st, 1, from_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "transfer_by_key");
    }
    done(st);
    return rc;
}

static int sq_transfer_insert(void *impl, int64_t from_id, int64_t to_id, int64_t amount_cents,
                              const char *key, int64_t now_ms, int64_t *id, int *created)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_TRANSFER_INSERT];
    sqlite3_bind_int64(st, 1, from_id);
    sqlite3_bind_int64(st, 2, to_id);
    sqlite3_bind_int64(st, 3, amount_cents);
    sqlite3_bind_text(st, 4, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    int rc = insert_rc(s, sqlite3_step(st), "transfer_insert");
    *created = rc == STORE_OK && sqlite3_changes(s->db) > 0;
    int64_t rowid = sqlite3_last_insert_rowid(s->db);
    done(st);
    if (rc != STORE_OK)
        return rc;
    if (!*created)
        return transfer_by_key(s, from_id, key, id);
    *id = rowid;
    return STORE_OK;
}

static int sq_transfer_get(void *impl, int64_t id, struct store_transfer *t)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_TRANSFER_GET];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t->id = sqlite3_column_int64(st, 0);
        t->from_id = sqlite3_column_int64(st, 1);
        t->to_id = sqlite3_column_int64(st, 2);
        t->amount_cents = sqlite3_column_int64(st, 3);
        t->created_ms = sqlite3_column_int64(st, 8);
        t->updated_ms = sqlite3_column_int64(st, 9);
        rc = copy_text(st, 4, t->from, sizeof t->from, "transfer_get");
        if (rc == STORE_OK)
            rc = copy_text(st, 5, t->to, sizeof t->to, "transfer_get");
        if (rc == STORE_OK)
            rc = store_transfer_state_read((const char *)sqlite3_column_text(st, 6), &t->state);
        if (rc == STORE_OK)
            rc = copy_text(st, 7, t->reason, sizeof t->reason, "transfer_get");
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "transfer_get");
    }
    done(st);
    return rc;
}

static int sq_transfer_set_state(void *impl, int64_t id, enum transfer_state state,
                                 const char *reason, int64_t now_ms)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_TRANSFER_SET_STATUS];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, transfer_state_name(state), -1, SQLITE_STATIC);
    if (reason && *reason)
        sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = sqlite3_step(st);
    rc = rc != SQLITE_DONE ? fail(s, "transfer_set_state")
       : sqlite3_changes(s->db) ? STORE_OK : STORE_NOT_FOUND;
    done(st);
    return rc;
}

/* Steps st, calling cb with column 0 of each row; resets st. */
static int each_id(struct sq *s, sqlite3_stmt *st, const char *what,
                   void (*cb)(void *arg, int64_t id), void *arg)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(arg, sqlite3_column_int64(st, 0));
    rc = rc == SQLITE_DONE ? STORE_OK : fail(s, what);
    done(st);
    return rc;
}

static int sq_transfers_unfinished(void *impl, void (*cb)(void *arg, int64_t id), void *arg)
{
    struct sq *s = impl;
    return each_id(s, s->q[Q_TRANSFERS_UNFINISHED], "transfers_unfinished", cb, arg);
}

static int sq_transfers_stale(void *impl, int64_t before_ms,
                              void (*cb)(void *arg, int64_t id), void *arg)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_TRANSFERS_STALE];
    sqlite3_bind_int64(st, 1, before_ms);
    return each_id(s, st, "transfers_stale", cb, arg);
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .session_create = sq_session_create,
    .session_lookup = sq_session_lookup,
    .session_touch = sq_session_touch,
    .session_delete = sq_session_delete,
    .event_append = sq_event_append,
    .events_after = sq_events_after,
    .last_event_id = sq_last_event_id,
    .events_all_after = sq_events_all_after,
    .shared = 0,                /* one process owns the file */
    .notify_fd = NULL,          /* nothing else writes: nothing to hear */
    .notify_drain = NULL,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .account_balance = sq_account_balance,
    .account_move = sq_account_move,
    .transfer_insert = sq_transfer_insert,
    .transfer_get = sq_transfer_get,
    .transfer_set_state = sq_transfer_set_state,
    .transfers_unfinished = sq_transfers_unfinished,
    .transfer_lock = NULL,      /* a single writer: nothing to lock */
    .transfers_stale = sq_transfers_stale,
};
