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
    Q_GENERAL_JOIN,
    Q_MEMBERSHIPS,
    Q_ROOM_RANGE,
    Q_PRIVATE_RANGE,
    Q_ROOM_BY_NAME,
    Q_MEMBER_GET,
    Q_MEMBER_COUNT,
    Q_ROOM_INSERT,
    Q_MEMBER_JOIN,
    Q_MEMBER_LEAVE,
    Q_ROOM_SET_TOPIC,
    Q_MEMBER_READ,
    Q_ROOM_HISTORY,
    Q_ROOMS_LIST,
    Q_ROOM_UNREAD,
    Q_MEMBERS_ALL,
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
        "INSERT INTO events(ts_ms, type, recipient_id, sender_id, client_msg_id, payload, room_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        " ON CONFLICT(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL"
        " DO NOTHING",
    [Q_EVENT_EXISTING] =
        "SELECT id, ts_ms FROM events WHERE sender_id = ?1 AND client_msg_id = ?2",
    [Q_EVENTS_ALL_AFTER] =
        "SELECT id, ts_ms, recipient_id, type, payload, room_id, sender_id FROM events"
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
    [Q_GENERAL_JOIN] =
        "INSERT INTO room_members(room_id, user_id) VALUES (1, ?1)",
    /* A user's feed (sq_events_after): each membership's range of index
     * events_room and the private range of events_feed, merged in C. */
    [Q_MEMBERSHIPS] =
        "SELECT room_id, joined_id, COALESCE(left_id, 0) FROM room_members WHERE user_id = ?1"
        " AND (left_id IS NULL OR left_id > ?2) ORDER BY room_id LIMIT ?3",
    [Q_ROOM_RANGE] =
        "SELECT id, ts_ms, recipient_id, type, payload, room_id, sender_id FROM events"
        " WHERE room_id = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4",
    [Q_PRIVATE_RANGE] =
        "SELECT id, ts_ms, recipient_id, type, payload, room_id, sender_id FROM events"
        " WHERE recipient_id = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4",
    [Q_ROOM_BY_NAME] =
        "SELECT id, dm FROM rooms WHERE name = ?1",
    [Q_MEMBER_GET] =
        "SELECT joined_id, COALESCE(left_id, 0), read_id FROM room_members"
        " WHERE room_id = ?1 AND user_id = ?2",
    [Q_MEMBER_COUNT] =
        "SELECT count(*) FROM room_members WHERE user_id = ?1 AND left_id IS NULL",
    [Q_ROOM_INSERT] =
        "INSERT INTO rooms(name, topic, dm, created_ms) VALUES (?1, ?2, ?3, ?4)",
    [Q_MEMBER_JOIN] =
        "INSERT INTO room_members(room_id, user_id, joined_id, read_id) VALUES (?1, ?2, ?3, ?3)"
        " ON CONFLICT(room_id, user_id) DO UPDATE SET joined_id = ?3, left_id = NULL, read_id = ?3",
    [Q_MEMBER_LEAVE] =
        "UPDATE room_members SET left_id = ?3 WHERE room_id = ?1 AND user_id = ?2",
    [Q_ROOM_SET_TOPIC] =
        "UPDATE rooms SET topic = ?2 WHERE id = ?1",
    [Q_MEMBER_READ] =
        "UPDATE room_members SET read_id = max(read_id, ?3) WHERE room_id = ?1 AND user_id = ?2"
        " RETURNING read_id",
    [Q_ROOM_HISTORY] =
        "SELECT id, ts_ms, recipient_id, type, payload, room_id, sender_id FROM events"
        " WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    [Q_ROOMS_LIST] =
        "SELECT r.id, r.name, r.topic, r.dm,"
        " (SELECT count(*) FROM room_members x WHERE x.room_id = r.id AND x.left_id IS NULL),"
        " m.user_id IS NOT NULL AND m.left_id IS NULL, COALESCE(m.read_id, 0),"
        " COALESCE((SELECT max(e.id) FROM events e WHERE e.room_id = r.id), 0)"
        " FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = ?1"
        " WHERE r.dm = 0 OR m.user_id IS NOT NULL ORDER BY r.dm, r.name LIMIT ?2",
    [Q_ROOM_UNREAD] =
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE room_id = ?1 AND id > ?2"
        " AND type = 'chat' AND sender_id IS NOT ?4 LIMIT ?3)",
    [Q_MEMBERS_ALL] =
        "SELECT r.id, r.name, r.dm, COALESCE(m.user_id, 0), COALESCE(m.joined_id, 0),"
        " COALESCE(m.left_id, 0) FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id"
        " WHERE r.id <> 1",
};

/* Rows of a read, with copies of their text (a room call's reply, or a
 * feed read's merge), kept until the next. */
struct sq_rows {
    struct store_event *ev;
    size_t n, cap;
};

struct sq {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    struct sq_rows rows;
    struct store_room *rooms;
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
    for (size_t i = 0; i < s->rows.n; i++) {
        free((char *)s->rows.ev[i].type);
        free((char *)s->rows.ev[i].payload);
    }
    free(s->rows.ev);
    free(s->rooms);
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

static int general_join(struct sq *s, int64_t user_id)
{
    sqlite3_stmt *st = s->q[Q_GENERAL_JOIN];
    sqlite3_bind_int64(st, 1, user_id);
    int rc = insert_rc(s, sqlite3_step(st), "general_join");
    done(st);
    return rc;
}

/* The user, its account, the opening balance's ledger row and its
 * membership of general: all or none. */
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
        rc = general_join(s, id);
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
    /* v1's "everyone": general's */
    bind_id_or_null(st, 7, ev->room_id || ev->recipient_id ? ev->room_id : STORE_GENERAL_ROOM_ID);
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
            .room_id = sqlite3_column_count(st) > 5 ? sqlite3_column_int64(st, 5) : 0,
            .sender_id = sqlite3_column_count(st) > 6 ? sqlite3_column_int64(st, 6) : 0,
        };
        if (cb(arg, &e))
            break;
    }
    rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? STORE_OK : fail(s, what);
    done(st);
    return rc;
}

/* A user's feed: below, with the rooms. */
static int sq_events_after(void *impl, int64_t user_id, int64_t after, int limit,
                           store_event_cb cb, void *arg);

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

/* ---- rooms (protocol v1.1) ---- */

static void rows_clear(struct sq_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->ev[i].type);
        free((char *)r->ev[i].payload);
    }
    r->n = 0;
}

/* Keeps a copy of the row st is on. */
static int rows_add(struct sq_rows *r, sqlite3_stmt *st)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct store_event *ev = realloc(r->ev, cap * sizeof *ev);
        if (!ev)
            return -1;
        r->ev = ev;
        r->cap = cap;
    }
    const char *type = (const char *)sqlite3_column_text(st, 3);
    const char *payload = (const char *)sqlite3_column_text(st, 4);
    struct store_event e = {
        .id = sqlite3_column_int64(st, 0), .ts_ms = sqlite3_column_int64(st, 1),
        .recipient_id = sqlite3_column_int64(st, 2), .room_id = sqlite3_column_int64(st, 5),
        .sender_id = sqlite3_column_int64(st, 6),
        .type = strdup(type ? type : ""), .payload = strdup(payload ? payload : "{}"),
    };
    if (!e.type || !e.payload) {
        free((char *)e.type);
        free((char *)e.payload);
        return -1;
    }
    r->ev[r->n++] = e;
    return 0;
}

/* Steps st (bound), keeping every row. */
static int rows_read(struct sq *s, sqlite3_stmt *st, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (rows_add(&s->rows, st) < 0) {
            done(st);
            return STORE_ERROR;
        }
    rc = rc == SQLITE_DONE ? STORE_OK : fail(s, what);
    done(st);
    return rc;
}

static int by_id(const void *a, const void *b)
{
    const struct store_event *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Keeps the `limit` lowest ids of the rows; returns the highest kept when
 * there are that many (what later ranges need not go past), else max. */
static int64_t rows_trim(struct sq_rows *r, int limit, int64_t max)
{
    if (r->n > 1)                 /* qsort wants an array, even of none */
        qsort(r->ev, r->n, sizeof *r->ev, by_id);
    while (r->n > (size_t)limit) {
        r->n--;
        free((char *)r->ev[r->n].type);
        free((char *)r->ev[r->n].payload);
    }
    return r->n == (size_t)limit ? r->ev[r->n - 1].id : max;
}

/* One range (a room's from its member's bounds, or the private one). */
static int range_read(struct sq *s, enum stmt_id q, int64_t key, int64_t after, int64_t upto, int limit)
{
    sqlite3_stmt *st = s->q[q];
    sqlite3_bind_int64(st, 1, key);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, upto);
    sqlite3_bind_int(st, 4, limit);
    return rows_read(s, st, "events_after");
}

struct member_range { int64_t room_id, joined_id, left_id; };

/* The memberships that may hold events after `after`: those not left
 * before it (at most STORE_ROOMS_PER_USER current ones, and the recently
 * left). */
static int memberships(struct sq *s, int64_t user_id, int64_t after, struct member_range *m, int max,
                       int *n)
{
    sqlite3_stmt *st = s->q[Q_MEMBERSHIPS];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int(st, 3, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        m[*n].room_id = sqlite3_column_int64(st, 0);
        m[*n].joined_id = sqlite3_column_int64(st, 1);
        m[*n].left_id = sqlite3_column_int64(st, 2);
        (*n)++;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : fail(s, "memberships");
    done(st);
    return rc;
}

/* A user's feed: their private events and each membership's span of its
 * room (from the join event to the leave event), merged: each range an
 * ordered index range, none read past the `limit` lowest found so far. */
static int sq_events_after(void *impl, int64_t user_id, int64_t after, int limit,
                           store_event_cb cb, void *arg)
{
    struct sq *s = impl;
    enum { MAX_MEMBERSHIPS = 4 * STORE_ROOMS_PER_USER };
    struct member_range m[MAX_MEMBERSHIPS];
    int n = 0;
    limit = limit < 1 ? 1 : limit;
    int64_t upto = INT64_MAX;
    rows_clear(&s->rows);
    int rc = memberships(s, user_id, after, m, MAX_MEMBERSHIPS, &n);
    if (rc == STORE_OK)
        rc = range_read(s, Q_PRIVATE_RANGE, user_id, after, upto, limit);
    for (int i = 0; rc == STORE_OK && i < n; i++) {
        upto = rows_trim(&s->rows, limit, upto);
        int64_t lo = m[i].joined_id > 0 ? m[i].joined_id - 1 : 0;
        int64_t hi = m[i].left_id && m[i].left_id < upto ? m[i].left_id : upto;
        rc = range_read(s, Q_ROOM_RANGE, m[i].room_id, lo > after ? lo : after, hi, limit);
    }
    if (rc == STORE_OK) {
        rows_trim(&s->rows, limit, upto);
        for (size_t i = 0; i < s->rows.n; i++)
            if (cb(arg, &s->rows.ev[i]))
                break;
    }
    rows_clear(&s->rows);
    return rc;
}

/* The room named name: its id and dm flag; 0 if there is none. */
static int room_find(struct sq *s, const char *name, int64_t *id, int *dm)
{
    sqlite3_stmt *st = s->q[Q_ROOM_BY_NAME];
    sqlite3_bind_text(st, 1, name ? name : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *id = 0;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *dm = sqlite3_column_int(st, 1);
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : fail(s, "room_find");
    done(st);
    return rc;
}

/* *state: 0 never a member, 1 a member, 2 left. */
static int member_state(struct sq *s, int64_t room_id, int64_t user_id, int *state)
{
    sqlite3_stmt *st = s->q[Q_MEMBER_GET];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    int rc = sqlite3_step(st);
    *state = rc == SQLITE_ROW ? (sqlite3_column_int64(st, 1) ? 2 : 1) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : fail(s, "member_get");
    done(st);
    return rc;
}

static int one_int(struct sq *s, enum stmt_id q, int64_t a, int64_t b, int64_t c, int64_t *out)
{
    sqlite3_stmt *st = s->q[q];
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    if (sqlite3_bind_parameter_count(st) >= 3)
        sqlite3_bind_int64(st, 3, c);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : fail(s, "room count");
    done(st);
    return rc;
}

static int full(struct sq *s, int64_t user_id, int *is_full)
{
    int64_t n = 0;
    int rc = one_int(s, Q_MEMBER_COUNT, user_id, 0, 0, &n);
    *is_full = n >= STORE_ROOMS_PER_USER;
    return rc;
}

/* Appends a room event and adds it to the reply's rows. */
static int room_event(struct sq *s, int64_t room_id, const char *type, int64_t user_id,
                      const char *payload, int64_t now_ms, int64_t *id)
{
    struct store_new_event ev = { .type = type, .room_id = room_id, .sender_id = user_id,
                                  .payload = payload ? payload : "{}", .ts_ms = now_ms };
    int64_t ts;
    int created;
    int rc = sq_event_append(s, &ev, id, &ts, &created);
    if (rc != STORE_OK)
        return rc;
    struct sq_rows *r = &s->rows;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct store_event *e = realloc(r->ev, cap * sizeof *e);
        if (!e)
            return STORE_ERROR;
        r->ev = e;
        r->cap = cap;
    }
    struct store_event e = { .id = *id, .ts_ms = now_ms, .room_id = room_id, .sender_id = user_id,
                             .type = strdup(type), .payload = strdup(ev.payload) };
    r->ev[r->n++] = e;
    return e.type && e.payload ? STORE_OK : STORE_ERROR;
}

static int member_set(struct sq *s, enum stmt_id q, int64_t room_id, int64_t user_id, int64_t id)
{
    sqlite3_stmt *st = s->q[q];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : fail(s, "member_set");
    done(st);
    return rc;
}

static int room_insert(struct sq *s, const char *name, const char *topic, int dm, int64_t now_ms,
                       int64_t *id)
{
    sqlite3_stmt *st = s->q[Q_ROOM_INSERT];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic ? topic : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dm);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = insert_rc(s, sqlite3_step(st), "room_insert");
    *id = sqlite3_last_insert_rowid(s->db);
    done(st);
    return rc;
}

/* A member joins: the event, then the membership from it on. */
static int join(struct sq *s, int64_t room_id, int64_t user_id, const char *payload, int64_t now_ms)
{
    int64_t id;
    int rc = room_event(s, room_id, "member", user_id, payload, now_ms, &id);
    return rc == STORE_OK ? member_set(s, Q_MEMBER_JOIN, room_id, user_id, id) : rc;
}

static int room_create(struct sq *s, const struct store_args *a, struct store_reply *rep)
{
    int is_full, dm;
    int rc = room_find(s, a->name, &rep->room_id, &dm);
    if (rc == STORE_OK && rep->room_id)
        return rep->room_err = STORE_ROOM_EXISTS, STORE_CONSTRAINT;
    if (rc == STORE_OK && (rc = full(s, a->user_id, &is_full)) == STORE_OK && is_full)
        return rep->room_err = STORE_ROOM_TOO_MANY, STORE_CONSTRAINT;
    if (rc == STORE_OK)
        rc = room_insert(s, a->name, a->topic, 0, a->now_ms, &rep->room_id);
    if (rc == STORE_OK)
        rc = join(s, rep->room_id, a->user_id, a->payload, a->now_ms);
    int64_t id;
    if (rc == STORE_OK && a->topic)
        rc = room_event(s, rep->room_id, "topic", a->user_id, a->payload2, a->now_ms, &id);
    return rc;
}

static int dm_open(struct sq *s, const struct store_args *a, struct store_reply *rep)
{
    int64_t other = 0;
    int dm, full_a, full_b;
    int rc = sq_user_get(s, a->to ? a->to : "", &other, NULL, 0);
    if (rc == STORE_NOT_FOUND)
        return rep->room_err = STORE_ROOM_NOT_FOUND, STORE_CONSTRAINT;
    if (rc == STORE_OK)
        rc = room_find(s, a->name, &rep->room_id, &dm);
    if (rc != STORE_OK || rep->room_id)
        return rc;
    if ((rc = full(s, a->user_id, &full_a)) == STORE_OK && (rc = full(s, other, &full_b)) == STORE_OK
        && (full_a || full_b))
        return rep->room_err = STORE_ROOM_TOO_MANY, STORE_CONSTRAINT;
    if (rc == STORE_OK)
        rc = room_insert(s, a->name, "", 1, a->now_ms, &rep->room_id);
    if (rc == STORE_OK)
        rc = join(s, rep->room_id, a->user_id, a->payload, a->now_ms);
    if (rc == STORE_OK)
        rc = join(s, rep->room_id, other, a->payload2, a->now_ms);
    return rc;
}

/* The checks every call on an existing room makes: *state as member_state.
 * A DM one is not party to does not exist. */
static int room_of(struct sq *s, const struct store_args *a, struct store_reply *rep, int *dm, int *state)
{
    int rc = room_find(s, a->name, &rep->room_id, dm);
    if (rc == STORE_OK && rep->room_id)
        rc = member_state(s, rep->room_id, a->user_id, state);
    if (rc == STORE_OK && (!rep->room_id || (*dm && *state == 0))) {
        rep->room_id = 0;
        rep->room_err = STORE_ROOM_NOT_FOUND;
        return STORE_CONSTRAINT;
    }
    return rc;
}

static int room_change(struct sq *s, enum store_call_kind kind, const struct store_args *a,
                       struct store_reply *rep)
{
    int dm = 0, state = 0, is_full;
    int rc = room_of(s, a, rep, &dm, &state);
    if (rc != STORE_OK)
        return rc;
    if (dm && kind != STORE_CALL_ROOM_READ)
        return rep->room_err = STORE_ROOM_NOT_ALLOWED, STORE_CONSTRAINT;
    if (kind == STORE_CALL_ROOM_JOIN) {
        if (state == 1)
            return STORE_OK;
        if ((rc = full(s, a->user_id, &is_full)) == STORE_OK && is_full)
            return rep->room_err = STORE_ROOM_TOO_MANY, STORE_CONSTRAINT;
        return rc == STORE_OK ? join(s, rep->room_id, a->user_id, a->payload, a->now_ms) : rc;
    }
    if (kind == STORE_CALL_ROOM_LEAVE) {
        if (rep->room_id == STORE_GENERAL_ROOM_ID)
            return rep->room_err = STORE_ROOM_CANNOT_LEAVE, STORE_CONSTRAINT;
        int64_t id;
        if (state != 1)
            return STORE_OK;
        rc = room_event(s, rep->room_id, "member", a->user_id, a->payload, a->now_ms, &id);
        return rc == STORE_OK ? member_set(s, Q_MEMBER_LEAVE, rep->room_id, a->user_id, id) : rc;
    }
    if (state != 1)
        return rep->room_err = STORE_ROOM_NOT_MEMBER, STORE_CONSTRAINT;
    if (kind == STORE_CALL_ROOM_READ)
        return one_int(s, Q_MEMBER_READ, rep->room_id, a->user_id, a->id, &rep->id);
    sqlite3_stmt *st = s->q[Q_ROOM_SET_TOPIC];
    sqlite3_bind_int64(st, 1, rep->room_id);
    sqlite3_bind_text(st, 2, a->topic ? a->topic : "", -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : fail(s, "room_topic");
    done(st);
    int64_t id;
    return rc == STORE_OK ? room_event(s, rep->room_id, "topic", a->user_id, a->payload, a->now_ms, &id) : rc;
}

static int room_messages(struct sq *s, const struct store_args *a, struct store_reply *rep)
{
    int dm = 0, state = 0;
    int rc = room_of(s, a, rep, &dm, &state);
    if (rc != STORE_OK)
        return rc;
    if (state != 1)
        return rep->room_err = STORE_ROOM_NOT_MEMBER, STORE_CONSTRAINT;
    int limit = a->limit < 1 ? 1 : a->limit;
    sqlite3_stmt *st = s->q[Q_ROOM_HISTORY];
    sqlite3_bind_int64(st, 1, rep->room_id);
    sqlite3_bind_int64(st, 2, a->before > 0 ? a->before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit + 1);
    rc = rows_read(s, st, "room_messages");
    if (rc == STORE_OK && s->rows.n > (size_t)limit) {
        rep->more = 1;
        s->rows.n--;
        free((char *)s->rows.ev[s->rows.n].type);
        free((char *)s->rows.ev[s->rows.n].payload);
    }
    if (s->rows.n > 1)
        qsort(s->rows.ev, s->rows.n, sizeof *s->rows.ev, by_id);
    return rc;
}

/* A room's chat events after the read marker, not the reader's own, up to
 * STORE_UNREAD_MAX. */
static int unread(struct sq *s, int64_t room_id, int64_t read_id, int64_t user_id, int64_t *n)
{
    sqlite3_stmt *st = s->q[Q_ROOM_UNREAD];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, read_id);
    sqlite3_bind_int(st, 3, STORE_UNREAD_MAX);
    sqlite3_bind_int64(st, 4, user_id);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = rc == SQLITE_ROW ? STORE_OK : fail(s, "unread");
    done(st);
    return rc;
}

static int rooms_list(struct sq *s, const struct store_args *a, struct store_reply *rep)
{
    enum { MAX = STORE_ROOMS_LIST_MAX + STORE_ROOMS_PER_USER };
    if (!s->rooms && !(s->rooms = calloc(MAX, sizeof *s->rooms)))
        return STORE_ERROR;
    sqlite3_stmt *st = s->q[Q_ROOMS_LIST];
    sqlite3_bind_int64(st, 1, a->user_id);
    sqlite3_bind_int(st, 2, MAX);
    int rc, n = 0;
    int64_t read_id[MAX];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < MAX) {
        struct store_room *r = &s->rooms[n];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        if (copy_text(st, 1, r->name, sizeof r->name, "rooms_list") ||
            copy_text(st, 2, r->topic, sizeof r->topic, "rooms_list"))
            continue;
        r->dm = sqlite3_column_int(st, 3);
        r->members = sqlite3_column_int64(st, 4);
        r->joined = sqlite3_column_int(st, 5);
        read_id[n] = sqlite3_column_int64(st, 6);
        r->last_id = sqlite3_column_int64(st, 7);
        n++;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : fail(s, "rooms_list");
    done(st);
    for (int i = 0; rc == STORE_OK && i < n; i++)
        if (s->rooms[i].joined)
            rc = unread(s, s->rooms[i].id, read_id[i], a->user_id, &s->rooms[i].unread);
    rep->rooms = s->rooms;
    rep->n_rooms = n;
    return rc;
}

static int room_write(struct sq *s, enum store_call_kind kind, const struct store_args *a,
                      struct store_reply *rep)
{
    switch (kind) {
    case STORE_CALL_ROOM_CREATE:
        return room_create(s, a, rep);
    case STORE_CALL_DM_OPEN:
        return dm_open(s, a, rep);
    default:
        return room_change(s, kind, a, rep);
    }
}

/* A room call: a write in a transaction of its own (rolled back on any
 * refusal), or a read. */
static int sq_room_call(void *impl, enum store_call_kind kind, const struct store_args *a,
                        struct store_reply *rep)
{
    struct sq *s = impl;
    rows_clear(&s->rows);
    int rc;
    if (kind == STORE_CALL_ROOMS_LIST)
        rc = rooms_list(s, a, rep);
    else if (kind == STORE_CALL_ROOM_MESSAGES)
        rc = room_messages(s, a, rep);
    else if (kind < STORE_CALL_ROOM_CREATE || kind >= STORE_CALL_COUNT || !a->name)
        rc = STORE_ERROR;
    else if ((rc = sq_begin(s)) == STORE_OK) {
        rc = room_write(s, kind, a, rep);
        if (rc == STORE_OK)
            rc = sq_commit(s);
        else
            sq_rollback(s);
    }
    if (rc != STORE_OK && kind != STORE_CALL_ROOM_MESSAGES)
        rows_clear(&s->rows);
    rep->n = rc == STORE_OK || kind == STORE_CALL_ROOM_MESSAGES ? (int)s->rows.n : 0;
    rep->events = s->rows.ev;
    return rc;
}

static int sq_room_members_all(void *impl, store_member_cb cb, void *arg)
{
    struct sq *s = impl;
    sqlite3_stmt *st = s->q[Q_MEMBERS_ALL];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
           sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4),
           sqlite3_column_int64(st, 5));
    rc = rc == SQLITE_DONE ? STORE_OK : fail(s, "room_members_all");
    done(st);
    return rc;
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
    .room_call = sq_room_call,
    .room_members_all = sq_room_members_all,
};
