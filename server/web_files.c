/* web_files.c — the web client's files, embedded (web_assets.h, generated
 * from web/ by scripts/embed-web.sh), found by path, and the headers of
 * their answers. Every file is revalidated (no-cache + ETag: the names
 * carry no version, and a chatd upgrade must reach the page at once); the
 * page may run only its own scripts and styles and talk only to its own
 * origin (connect-src 'self' covers ws: and wss: to the same host in
 * CSP 3). */
#include "web_files.h"

#include <string.h>

#include "web_assets.h"

#define WEB_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const struct web_file *web_file_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < WEB_ASSET_COUNT; i++)
        if (strcmp(WEB_ASSETS[i].path, path) == 0)
            return &WEB_ASSETS[i];
    return NULL;
}

int web_file_not_modified(struct lws *wsi, const struct web_file *f)
{
    char tag[64];
    if (lws_hdr_copy(wsi, tag, sizeof tag, WSI_TOKEN_HTTP_IF_NONE_MATCH) <= 0)
        return 0;
    return strcmp(tag, f->etag) == 0;
}

static int web_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

int web_file_headers(struct lws *wsi, const struct web_file *f, unsigned char **p, unsigned char *end)
{
    if (web_header(wsi, "etag:", f->etag, p, end) ||
        web_header(wsi, "cache-control:", "no-cache", p, end) ||
        web_header(wsi, "content-security-policy:", WEB_CSP, p, end) ||
        web_header(wsi, "x-content-type-options:", "nosniff", p, end) ||
        web_header(wsi, "referrer-policy:", "no-referrer", p, end) ||
        web_header(wsi, "cross-origin-opener-policy:", "same-origin", p, end))
        return -1;
    return 0;
}
