/** @file
 * Exclude and protect patterns: the one matcher for the fnmatch(3) globs of
 * the configuration (`excludes`, `protected_patterns`), `bkr create
 * --exclude`, the backup walker, diff and recovery.
 *
 * Paths are relative to a source's root ("dir/sub/file", no leading '/').
 * A pattern is matched with fnmatch(3) without FNM_PATHNAME, so '*' also
 * matches '/'; a pattern without a '/' also matches the last component
 * alone, like .gitignore ("*.tmp" excludes "a/b.tmp").
 */
#ifndef BKR_PATTERN_H
#define BKR_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

/**
 * True when @p rel itself matches one of @p patterns (NULL entries are
 * ignored).  Walkers call this for each entry before descending, so a match
 * of a directory also leaves out everything below it.
 */
bool bkr_pattern_match(const char *const *patterns, size_t n, const char *rel);

/**
 * True when @p rel or one of its parent directories ("a", "a/b", ...)
 * matches: the answer for one path looked at on its own.  Leading '/' of
 * @p rel are ignored.
 */
bool bkr_pattern_match_under(const char *const *patterns, size_t n, const char *rel);

#endif
