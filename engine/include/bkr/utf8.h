/** @file
 * UTF-8 checks for text that leaves the engine as JSON: file names are
 * bytes, JSON is UTF-8, so a name that is not UTF-8 is written with U+FFFD
 * for each bad byte beside a "<key>_hex" member carrying the exact bytes
 * (bkr(1), "JSON output").
 */
#ifndef BKR_UTF8_H
#define BKR_UTF8_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/** Length of the valid UTF-8 sequence at @p s (1..4; @p len > 0), or 0 when invalid. */
size_t bkr_utf8_seq(const char *s, size_t len);

/** true when @p s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool bkr_utf8_valid(const char *s, size_t len);

/**
 * true when @p s[0..len) holds a control character: C0 (a newline, a tab,
 * ESC...), DEL or C1 (U+0080..U+009F).  Bytes that are not UTF-8 are not
 * control characters here (bkr_utf8_valid tells those).  The one rule for
 * names that must print as they are: tags (bkr tag, create --tag) and the
 * configuration's source names.
 */
bool bkr_text_has_control(const char *s, size_t len);

/** A malloc'd copy of @p s with every byte that is not UTF-8 replaced by U+FFFD; NULL on OOM. */
char *bkr_utf8_clean(const char *s);

/**
 * @p s[0..len) as one line of text safe for a terminal, into @p out (always
 * NUL-terminated): control characters (C0, DEL, C1) and bytes that are
 * not UTF-8 are written as \xHH, a backslash as \\.  When it does not fit
 * in @p cap, it is cut at a character and ends in "...".  For text from
 * outside (object names, lock contents, key files' fields, names in damaged
 * trees) put into messages: a newline or an escape sequence in it cannot
 * forge a line or colour the terminal.  Returns @p out.
 */
char *bkr_text_escape(char *out, size_t cap, const char *s, size_t len);

/** bkr_text_escape whole, never cut: malloc'd (the caller frees it), NULL out of memory. */
char *bkr_text_escape_dup(const char *s, size_t len);

/**
 * Replace the malloc'd string *@p s (may be NULL) with @p fmt formatted
 * whole on the heap: a message naming a path or carrying another error's
 * text, never cut.  Formatted before the old string is freed, so an argument
 * may be *@p s itself (appending to it).  Returns the new *@p s; out of
 * memory, *@p s is NULL and so is the return (the caller says so in words).
 */
char *bkr_text_setf(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** bkr_text_setf with a va_list. */
char *bkr_text_vsetf(char **s, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
