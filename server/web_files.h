/* web_files.h — the web client's files (web/), compiled into chatd at build
 * time (scripts/embed-web.sh), and the headers every page answer carries:
 * its type, ETag and caching, and the browser security headers (a strict
 * Content-Security-Policy with no inline script, nosniff, no referrer). */
#ifndef CHAT_WEB_FILES_H
#define CHAT_WEB_FILES_H

#include <libwebsockets.h>
#include <stddef.h>

struct web_file {
    const char *path;             /* "/index.html", "/app.js", ... */
    const char *type;             /* Content-Type */
    const char *etag;             /* quoted, from the file's SHA-256 */
    const unsigned char *data;
    size_t len;
};

/* The file served at path ("/" is /index.html), or NULL. */
const struct web_file *web_file_find(const char *path);
/* The request's If-None-Match names f's ETag: answer 304. */
int web_file_not_modified(struct lws *wsi, const struct web_file *f);
/* f's ETag, caching and security headers into [*p, end). 0 or -1. */
int web_file_headers(struct lws *wsi, const struct web_file *f, unsigned char **p,
                     unsigned char *end);

#endif
