/* money.h — amounts as integer cents: strict parsing of what people type
 * ("25", "25.5", "25.00", "1,000.00") and formatting for display. No floating
 * point anywhere near money. */
#ifndef CHAT_MONEY_H
#define CHAT_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MAX_CENTS  100000000LL   /* 1,000,000.00: the largest single transfer */

/* Parses a positive amount of at most MONEY_MAX_CENTS: digits, optional
 * thousands commas in groups of three, optional '.' and one or two decimals.
 * No sign, spaces, exponent or more than two decimals. 0 or -1. */
int money_parse(const char *s, int64_t *cents);
/* Formats cents as "-1,234.56" into buf. Returns buf. */
char *money_format(int64_t cents, char *buf, size_t len);

#endif
