/* harness_internal.h — what the harness's parts (harness_*.c) share with
 * each other and the tests never call: deadline arithmetic, buffers, the
 * process registry's spawn and pump, socket I/O and response parsing,
 * chatd's spawn, and the PostgreSQL database bookkeeping. Include after
 * harness.h. */
#ifndef E2E_HARNESS_INTERNAL_H
#define E2E_HARNESS_INTERNAL_H

#include "harness.h"

#define H_MAX_PROCS 64

/* ---- harness_proc.c ---- */
/* Milliseconds left until deadline, clamped to [0, 1000000]. */
int  h_remaining(int64_t deadline);
void h_buf_add(struct h_buf *b, const void *p, size_t n);
void h_buf_consume(struct h_buf *b, size_t n);
void h_buf_free(struct h_buf *b);
void h_set_nonblock(int fd);
/* h_pump that also polls extra_fd for extra_events; returns its revents. */
short h_pump_with(int timeout_ms, int extra_fd, short extra_events);
/* Set while spawning helpers (psql, haproxy) that $E2E_WRAP must not wrap. */
extern int h_spawn_nowrap;
/* Forks argv with env (NULL-terminated list of "K=V" to add), tracked. */
struct h_proc *h_spawn(const char *name, char *const argv[], const char *const *env, int want_stdin);
/* Removes p from the registry and frees it (after it exited or was killed). */
void h_proc_forget(struct h_proc *p);
/* getenv(env) if set and not empty, else def. */
const char *h_bin(const char *env, const char *def);

/* ---- harness_http.c ---- */
/* Sends all of buf (pumping the children meanwhile); 0 or -1. */
int  h_send_all(int fd, const void *buf, size_t len, int64_t deadline);
/* 1 data arrived, 0 EOF, -1 time-out, -2 error. */
int  h_recv_some(int fd, struct h_buf *b, int64_t deadline);
/* Just past the "\r\n\r\n" ending the header block in b, or NULL. */
const char *h_find_hdr_end(const struct h_buf *b);
/* Reads one HTTP response from fd, with bytes already in *in. */
int  h_read_response(int fd, struct h_buf *in, struct h_http_resp *r, int64_t deadline);
/* A well-formed request (see h_http_call) as a new buffer of *len bytes. */
char *h_build_request(int port, const char *method, const char *path, const char *token,
                      const char *body, long body_len, size_t *len);

/* ---- harness_server.c ---- */
/* Spawns chatd from s's fields on a free port; waits for its listening line. */
void h_server_spawn(struct h_server *s);
/* Forgets a test's h_set_pwhash_cost (harness_cleanup, at every teardown). */
void h_pwhash_cost_reset(void);

/* ---- harness_pg.c ---- */
/* The database of dbdir: the one made for it before, or a new one. */
void h_pg_db_for(const char *dbdir, char *url, size_t len);
/* Drops the databases made since the last call, in the background. */
void h_pg_drop_all(void);

#endif
