/* auth.c — bearer tokens: minting them from the CSPRNG, hashing them for
 * storage, and resolving a presented token to its user. */
#include "server.h"

#include <sodium.h>
#include <string.h>

int auth_token_new(char hex[PROTO_TOKEN_HEX_LEN + 1])
{
    unsigned char raw[PROTO_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, PROTO_TOKEN_HEX_LEN + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    return 0;
}

void auth_token_hash(const char *token, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

/* A token is exactly 64 lowercase hex characters; anything else is not looked up. */
static int auth_token_well_formed(const char *token)
{
    if (strlen(token) != PROTO_TOKEN_HEX_LEN)
        return 0;
    for (const char *p = token; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int auth_check_token(struct server *srv, struct session *s, const char *token)
{
    char hash[65];
    if (!token || !auth_token_well_formed(token))
        return -1;
    auth_token_hash(token, hash);
    if (store_session_lookup(srv->store, hash, now_ms(), &s->user_id,
                             s->user, sizeof s->user) != STORE_OK) {
        s->user_id = 0;
        s->user[0] = '\0';
        return -1;
    }
    return 0;
}
