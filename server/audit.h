/* audit.h — one line per security-relevant event on stderr: logins and
 * failed logins, registrations, logouts, sessions expired for idleness,
 * refused tokens, transfers, limits hit, refused WebSocket origins, silent
 * WebSockets hung up. Callers pass names, ids, amounts, paths and addresses:
 * never a password, a token or a message body. */
#ifndef CHAT_AUDIT_H
#define CHAT_AUDIT_H

/* audit("login.failed", "user=%s addr=%s", user, addr) ->
 * "2026-11-28T05:20:00.123Z audit login.failed user=alice addr=127.0.0.1" */
void audit(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
