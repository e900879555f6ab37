/* harness.h — process, HTTP and raw WebSocket helpers for the end-to-end
 * tests: the one header they include. Each section below is implemented by
 * one part: harness_proc.c (time, lifecycle, processes), harness_server.c
 * (chatd), harness_client.c (headless chat), harness_http.c, harness_ws.c,
 * harness_pg.c and harness_cluster.c (HAProxy and clusters); what the parts
 * share only among themselves is in harness_internal.h.
 *
 * Rules the helpers follow: every wait is a poll() against a deadline (no
 * fixed sleeps); chatd runs on a free port (--port 0, port read from its
 * first stdout line) with a database in a fresh mkdtemp directory; every
 * child is tracked, runs in its own process group with PR_SET_PDEATHSIG, and
 * is killed and reaped by harness_cleanup(), which cmocka teardowns call and
 * an atexit handler calls again. All children's pipes are drained whenever
 * any helper waits, so no child ever blocks on a full pipe.
 *
 * Binaries come from $CHATD_BIN and $CHAT_BIN (default bin/chatd, bin/chat).
 * Failures are reported through cmocka (fail_msg), after printing the
 * relevant process output. */
#ifndef E2E_HARNESS_H
#define E2E_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>
#include <cmocka.h>
#include <jansson.h>

/* ---- time (harness_proc.c) ----------------------------------------------- */
int64_t h_now_ms(void);                  /* CLOCK_MONOTONIC, ms */
int64_t h_deadline(int ms);              /* h_now_ms() + ms */

/* ---- whole-harness lifecycle (harness_proc.c) ---------------------------- */
/* Idempotent: ignores SIGPIPE, registers the atexit cleanup. */
void harness_init(void);
/* Kills (SIGKILL) and reaps every live child, frees them, removes temp dirs. */
void harness_cleanup(void);
/* Fresh temp dir (mkdtemp under $TMPDIR or /tmp), removed by harness_cleanup. */
const char *h_tmpdir(void);
/* Prints every tracked process's stderr (tail) to stderr; used on failures. */
void h_dump_logs(void);

/* cmocka setup/teardown that run harness_init / harness_cleanup. */
int h_setup(void **state);
int h_teardown(void **state);

/* ---- processes (harness_proc.c) ------------------------------------------ */
struct h_buf { char *data; size_t len, cap; };

struct h_proc {
    char   name[48];
    pid_t  pid;
    int    pidfd;                  /* -1 if pidfd_open is unavailable */
    int    in_fd, out_fd, err_fd;  /* -1 once closed */
    struct h_buf out, err;
    int    exited, status;         /* waitpid status once exited */
    /* Client stdout parsing: complete lines are parsed as they arrive. */
    size_t  parsed;                /* offset of the first unparsed byte in out */
    json_t *events;                /* event objects (lines with int "id", string "type") */
    int     other_lines;           /* JSON lines that are not events */
    int     bad_lines;             /* non-JSON lines */
    char    first_bad[160];
};

/* Drains all children's pipes for up to timeout_ms (returns earlier if
 * something happened). */
void h_pump(int timeout_ms);
/* Waits for p to exit until deadline; returns 1 and sets *status if it did. */
int  h_proc_wait_exit(struct h_proc *p, int64_t deadline, int *status);
/* SIGKILL + reap (no-op if it already exited). */
void h_proc_kill(struct h_proc *p);
/* A tool (psql, scripts/pg-temp.sh), never under $E2E_WRAP, tracked like
 * every child; env: "K=V" strings to add, NULL-terminated (may be NULL). */
struct h_proc *h_spawn_tool(const char *name, char *const argv[], const char *const *env);
/* Runs a tool to its end within timeout_ms: its exit code, or -1 (killed,
 * time-out). *out and *err (each may be NULL) get what it printed (free()). */
int  h_tool_run(char *const argv[], char **out, char **err, int timeout_ms);

/* ---- server (harness_server.c) ------------------------------------------- */
struct h_server {
    struct h_proc *proc;
    int   port;
    char  dbdir[256];
    char  dbpath[300];
    char  url[64];                 /* http[s]://127.0.0.1:PORT, as chatd said */
    char  extra[16][128];          /* extra args, kept for restarts */
    int   nextra;
};

/* Starts chatd --host 127.0.0.1 --port 0 --db DBDIR/chat.db --pwhash-cost
 * min EXTRA... and waits (10 s) for its first stdout line "listening on
 * http://HOST:PORT". The cost is libsodium's least, for speed (chatd warns
 * about it on stderr): $CHAT_TEST_PWHASH_COST (interactive) replaces it for
 * every chatd, h_set_pwhash_cost for the rest of one test, and an extra
 * --pwhash-cost for one server.
 * extra is a NULL-terminated list (may be NULL). dbdir NULL: a new h_tmpdir.
 * A --host in extra overrides 127.0.0.1 (the line must name it, an IPv6
 * address as [ADDR], and url uses it); the h_http_* helpers still connect
 * to 127.0.0.1. */
void h_server_start(struct h_server *s, const char *dbdir, const char *const *extra);
/* h_server_start on a new database, then registers user with password and
 * logs in (asserting 201 and 200); token gets the bearer token (65 bytes). */
void h_server_start_with_user(struct h_server *s, const char *const *extra, const char *user,
                              const char *password, char *token);
/* The --pwhash-cost of every chatd started from now until the test's
 * teardown (harness_cleanup): "interactive", "min", or NULL for none at all
 * (chatd's own default, as in production). */
void h_set_pwhash_cost(const char *cost);
/* SIGTERM, wait up to 10 s, assert it exited with status 0. */
void h_server_stop(struct h_server *s);
/* SIGKILL + reap. */
void h_server_kill(struct h_server *s);
/* h_server_stop then h_server_start on the same database (new free port). */
void h_server_restart(struct h_server *s);
/* Starts chatd again on s's database and extra arguments and on the port it
 * had before (s->port), after h_server_kill or h_server_stop, so that clients
 * started with its URL can reconnect by themselves. Retries for up to 10 s
 * while the port is not free yet. */
void h_server_start_same_port(struct h_server *s);

/* ---- headless chat client (harness_client.c) ----------------------------- */
/* bin/chat --headless --server URL --user USER --transport T [extra...], with
 * CHAT_PASSWORD=password in its environment and pipes on stdin/out/err.
 * transport "short-poll" gets --interval-ms 100 unless extra sets it. */
struct h_proc *h_client_spawn(const struct h_server *s, const char *transport,
                              const char *user, const char *password,
                              const char *const *extra);
/* Writes line + "\n" to the client's stdin (asserts success). */
void h_client_send_line(struct h_proc *c, const char *line);
/* Waits until the client printed at least n events; returns the count seen
 * (< n on time-out: the caller asserts, so it can say what it expected). */
size_t h_client_wait_events(struct h_proc *c, size_t n, int64_t deadline);
/* Waits until c's stderr contains needle; returns 1/0. */
int  h_client_wait_stderr_match(struct h_proc *c, const char *needle, int64_t deadline);
/* Sends /quit and asserts the client exits with status 0 before deadline. */
void h_client_quit(struct h_proc *c, int64_t deadline);
/* Number of events c has printed and the i-th one (borrowed). */
size_t  h_client_nevents(const struct h_proc *c);
json_t *h_client_event(const struct h_proc *c, size_t i);

/* ---- HTTP over a raw TCP socket (harness_http.c) ------------------------- */
struct h_http_resp {
    int     status;                /* 0 if no status line was received */
    char   *head;                  /* status line + headers, NUL-terminated */
    char   *body;                  /* NUL-terminated (body_len excludes it) */
    size_t  body_len;
    json_t *json;                  /* parsed body if it is JSON, else NULL */
    int     closed_early;          /* connection closed before a full response */
};
/* Sends raw bytes to 127.0.0.1:port and reads one response (Content-Length,
 * chunked, or until EOF) within timeout_ms. Returns 0, or -1 if connecting
 * failed or nothing at all came back (r->status 0). Send errors (e.g. the
 * server answering early and closing) are tolerated: the response is still read. */
int  h_http_request(int port, const void *raw, size_t len, struct h_http_resp *r, int timeout_ms);
/* The two halves of h_http_request, for a request that must stay in flight
 * while something else happens (a long poll parked across a shutdown):
 * h_http_send_request connects and sends, returning the socket or -1;
 * h_http_read_response reads the answer like h_http_request and closes fd. */
int  h_http_send_request(int port, const void *raw, size_t len);
int  h_http_read_response(int fd, struct h_http_resp *r, int timeout_ms);
void h_http_resp_free(struct h_http_resp *r);
/* Value of header name (case-insensitive) as a new string (free()), or NULL. */
char *h_http_header(const struct h_http_resp *r, const char *name);

/* Builds a well-formed request (Host, Connection: close, Content-Length,
 * Content-Type: application/json when body != NULL, Authorization: Bearer
 * token when token != NULL) and runs it with a 10 s time-out (asserts it got
 * a response). body_len < 0 means strlen(body). */
void h_http_call(int port, const char *method, const char *path, const char *token,
                 const char *body, long body_len, struct h_http_resp *r);
/* The same with a longer time-out (for long polls). */
void h_http_call_timeout(int port, const char *method, const char *path, const char *token,
                         const char *body, long body_len, struct h_http_resp *r, int timeout_ms);

int  h_http_register(int port, const char *user, const char *password);       /* status */
/* Logs in; on 200 copies the token into token (>= 65 bytes). Returns status. */
int  h_http_login(int port, const char *user, const char *password, char *token);
/* Posts a message (room NULL: omitted; cmid NULL: omitted). On 201 sets *id. */
int  h_http_post_message(int port, const char *token, const char *room, const char *body,
                         const char *cmid, int64_t *id);
/* GET /api/v1/events?after=A&wait=0&limit=1000; asserts 200 and returns the
 * events array (new reference). */
json_t *h_http_get_events(int port, const char *token, int64_t after);
/* Sends GET /api/v1/events?after=AFTER&wait=20 for token on a connection
 * of its own (Connection: close) and returns the socket, for
 * h_http_read_response once the poll is answered; fails if it cannot. */
int  h_long_poll_send(int port, const char *token, int64_t after);
/* Waits until chatd holds at least n long polls (GET /healthz "parked"),
 * reading the spawned processes' output meanwhile; fails at deadline. */
void h_wait_parked(int port, int n, int64_t deadline);

/* Opens n connections (n <= 64), writes the same well-formed request (as
 * h_http_call builds it) on every one of them before reading any answer, then
 * reads each one's response within timeout_ms in all. r is an array of n.
 * Returns how many got a response (r[i].status 0 for the others). */
int  h_http_call_parallel(int port, const char *method, const char *path, const char *token,
                          const char *body, int n, struct h_http_resp *r, int timeout_ms);

/* Many different requests at once, possibly to several ports: opens a
 * connection for each of reqs[0..n) (n <= 512), writes every request before
 * reading any answer, then reads each within timeout_ms in all. Requests
 * are built as h_http_call builds them (body NULL: none). Returns how many got
 * a response (r[i].status 0 for the others, e.g. a dead instance). */
struct h_req {
    int port;
    const char *method, *path, *token, *body;
};
int  h_http_call_many(const struct h_req *reqs, int n, struct h_http_resp *r, int timeout_ms);

/* Asserts r is `status` with a JSON body {"error":{"code":code,"message":str}}
 * (code NULL: any string). what names the request in failure messages. */
void h_assert_error(const char *what, const struct h_http_resp *r, int status, const char *code);
/* The same check without failing: returns 1 if r is as expected, else 0 with
 * the reason printed to stderr (so a test can report every mismatch). */
int  h_check_error(const char *what, const struct h_http_resp *r, int status, const char *code);

/* A TCP connection to 127.0.0.1:port, non-blocking, TCP_NODELAY; -1 if refused. */
int  h_tcp_connect(int port);
/* From now on every helper connects from this loopback address (all of
 * 127/8 is local on Linux), so the server sees another client address;
 * NULL goes back to the default (127.0.0.1). */
void h_set_source_addr(const char *ipv4);

/* ---- raw WebSocket client (harness_ws.c) --------------------------------- */
enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BIN = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA };

struct h_ws {
    int fd;
    struct h_buf in;               /* received, not yet consumed bytes */
    int closed;                    /* peer sent close or the TCP stream ended */
    int close_code;                /* from the close frame; 1005 none, -1 no frame */
    int keep_pongs;                /* h_ws_recv_frame returns pongs instead of skipping them */
    int keep_ephemeral;            /* h_ws_recv_json returns presence, typing and read frames too */
};
/* Connects and handshakes on /api/v1/ws with a fixed Sec-WebSocket-Key and
 * Sec-WebSocket-Protocol: chat.v1; asserts 101, the accept key and the
 * subprotocol. */
struct h_ws *h_ws_connect(int port);
/* Handshake with the given extra header lines (each ending in \r\n, may be
 * NULL, replaces the protocol header); returns the socket on 101, NULL
 * otherwise with *resp holding whatever came back. */
struct h_ws *h_ws_connect_raw(int port, const char *extra_headers, struct h_http_resp *resp);
/* Sends one masked frame. Returns 0 or -1 (peer gone). */
int  h_ws_send_frame(struct h_ws *w, int opcode, int fin, const void *payload, size_t len);
int  h_ws_send_text(struct h_ws *w, const char *text);
/* Sends bytes as they are (a hand-built frame, e.g. unmasked or with reserved
 * bits). Returns 0 or -1 (peer gone). */
int  h_ws_send_raw(struct h_ws *w, const void *bytes, size_t len);
/* Waits until the server ends the TCP stream (EOF or reset), discarding
 * anything still arriving; returns 1, or 0 on time-out. */
int  h_ws_wait_eof(struct h_ws *w, int64_t deadline);
/* Reads the next data/close frame (answers pings). Returns 1 with a frame
 * (*payload malloc'd, NUL-terminated), 0 on time-out, -1 if the stream ended
 * without a frame. A close frame sets w->closed and w->close_code. */
int  h_ws_recv_frame(struct h_ws *w, int64_t deadline, int *opcode, int *fin,
                     char **payload, size_t *len);
/* Next text frame parsed as a JSON object; NULL on close/time-out/non-JSON
 * (prints why). */
json_t *h_ws_recv_json(struct h_ws *w, int64_t deadline);
/* Skips frames until a JSON text frame with "op" == op; NULL if none came. */
json_t *h_ws_recv_op(struct h_ws *w, const char *op, int64_t deadline);
/* Reads until a close frame or end of stream; returns the close code, 1005 for
 * a close frame without code, -1 if the stream ended with no close frame, -2
 * on time-out. Text frames before the close are ignored. */
int  h_ws_wait_close(struct h_ws *w, int64_t deadline);
/* Sends {"op":"hello","token":token,"after":after} and waits for "ready";
 * asserts it came. Returns the ready frame (new reference). */
json_t *h_ws_hello(struct h_ws *w, const char *token, int64_t after);
void h_ws_free(struct h_ws *w);

/* ---- PostgreSQL (harness_pg.c) ------------------------------------------- */
/* With CHAT_TEST_PG set (the URL of a PostgreSQL server where databases may
 * be created, e.g. from scripts/with-pg.sh), h_server_start gives each server
 * a fresh database of its own there (CREATE DATABASE chat_e2e_<pid>_<n>)
 * instead of DBDIR/chat.db; restarts (h_server_restart, h_server_start_same_port)
 * and h_server_start with a dbdir used before get the same database. The
 * databases are dropped by harness_cleanup. */
/* CHAT_TEST_PG, or NULL when it is unset or empty. */
const char *h_pg_url(void);
/* For a test that needs PostgreSQL: returns if CHAT_TEST_PG is set; else
 * fails the test when CHAT_TEST_PG_REQUIRED is set (CI's PostgreSQL pass),
 * or says why on stderr ("needs PostgreSQL: why") and skips it. */
void h_need_pg(const char *why);
/* Creates a fresh, uniquely named database on CHAT_TEST_PG's server and
 * writes its URL into url (asserts CHAT_TEST_PG is set and it worked). */
void h_pg_createdb(char *url, size_t len);
/* url with its port replaced by port (e.g. a relay's in front of the
 * database), into out; the port it had in *old_port. */
void h_pg_url_with_port(const char *url, int port, char *out, size_t len, int *old_port);

/* ---- clusters behind HAProxy (harness_cluster.c) ------------------------- */
#define H_CLUSTER_MAX 8

/* Starts n (<= H_CLUSTER_MAX) chatd instances on one fresh database (needs
 * CHAT_TEST_PG), each like h_server_start with the same extra arguments (at
 * most 14) plus --instance chatd<i+1>, and a port of its own. */
void h_servers_start_shared(struct h_server *s, int n, const char *const *extra);

/* HAProxy (from deploy/haproxy.cfg.in, or $HAPROXY_CFG_IN; binary
 * $HAPROXY_BIN or haproxy on PATH) in front of chatd instances, on a free
 * port, in the foreground as a tracked child; its log goes to its stderr
 * (shown by h_dump_logs). Backend i is the server "chatd<i+1>". */
struct h_haproxy {
    struct h_proc *proc;
    int  port;
    char url[64];                  /* http://127.0.0.1:PORT */
    char dir[256];                 /* holds haproxy.cfg and the stats socket */
    char sock[300];
    int  n;                        /* backends */
};
/* Starts it over backends[0..n) and waits (10 s) until it accepts
 * connections and reports every backend UP. */
void h_haproxy_start(struct h_haproxy *h, const struct h_server *backends, int n);
/* SIGKILL + reap (nothing of it needs to be kept). */
void h_haproxy_stop(struct h_haproxy *h);
/* Runs one runtime API command ("show stat", "disable server chatd/chatd1")
 * on the stats socket; returns its output (free()) or NULL. */
char *h_haproxy_cmd(const struct h_haproxy *h, const char *cmd);
/* Backend i as `show stat` reports it: returns 1 if its status is UP, 0 if
 * anything else (DOWN, going down "UP 1/2", MAINT), -1 if the socket did not
 * answer; *sessions (may be NULL) gets its current sessions (scur). */
int  h_haproxy_backend(const struct h_haproxy *h, int i, int *sessions);
/* Waits until backend i is UP (up = 1) or not UP (up = 0); returns 1/0. */
int  h_haproxy_wait_backend(const struct h_haproxy *h, int i, int up, int64_t deadline);

/* n chatd instances on one database and HAProxy in front of them. front is
 * the balancer seen as a server: give it to h_client_spawn, and its port to
 * the h_http_* and h_ws_* helpers (never to h_server_stop/kill). */
struct h_cluster {
    int n;
    struct h_server inst[H_CLUSTER_MAX];
    struct h_haproxy lb;
    struct h_server front;
};
void h_cluster_start(struct h_cluster *c, int n, const char *const *extra);
/* The same, with instance i on the database location dbpath[i] when dbpath
 * and dbpath[i] are not NULL: dbpath[0] one made with h_pg_createdb, and
 * another instance on the same database reached another way (through a
 * relay the test can cut, for one instance only). */
void h_cluster_start_dbs(struct h_cluster *c, int n, const char *const *extra, const char *const *dbpath);
/* SIGKILL instance i (no wait for the balancer to notice: that is what a
 * test measures). */
void h_cluster_kill(struct h_cluster *c, int i);
/* Starts instance i again on its port and database after h_cluster_kill, and
 * waits until the balancer reports it UP. */
void h_cluster_revive(struct h_cluster *c, int i);
/* Index of the live instance with the most balancer sessions (ties: the
 * lowest index), e.g. the one holding the clients' WebSockets. */
int  h_cluster_busiest(const struct h_cluster *c);
/* Stops the balancer, then every live instance with SIGTERM (asserting a
 * clean exit). */
void h_cluster_stop(struct h_cluster *c);

/* ---- failing and printing (harness_proc.c) ------------------------------- */
/* Fails the test with a message, after printing every process's stderr. */
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            h_dump_logs();                                                    \
            fail_msg(__VA_ARGS__);                                            \
        }                                                                     \
    } while (0)

/* A json_t dump as a new string for messages (free()). */
char *h_json_str(const json_t *j);

#endif
