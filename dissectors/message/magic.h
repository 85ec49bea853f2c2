/* magic.h - what a MIME part's bytes are, by libmagic, and whether that
 * disagrees with the type the message declares for them. */
#ifndef MX_MAGIC_H
#define MX_MAGIC_H

#include "core/mx.h"

/* Bytes of a part's decoded start that are looked at (libmagic reads the
 * headers of PE, ELF, PDF, ZIP and images within them). */
#define MX_MAGIC_PREFIX 4096
/* Room for a detected type ("application/vnd.openxmlformats-..." is cut). */
#define MX_MAGIC_TYPE_CAP 80

/* The MIME type (RFC 2045 §5.1 type/subtype, lower case) libmagic gives the
 * n bytes at p (n <= MX_MAGIC_PREFIX), into out (NUL-terminated, at most
 * cap - 1 bytes). The magic database is loaded once per run, on the first
 * call; calls from several threads are serialised (a magic_t is not
 * thread-safe). Returns false, out empty, when there are no bytes or the
 * database could not be loaded (once: a warning on stderr). */
bool mx_magic_type(const uint8_t *p, size_t n, char *out, size_t cap);

/* Whether a detected type disagrees with the declared one in a way that
 * matters (the rule is in magic.c: families, not spellings). Both are
 * lower case type/subtype; an empty declared type is text/plain
 * (RFC 2045 §5.2). */
bool mx_magic_mismatch(const char *declared, const char *detected);

/* Whether a detected type is a program: PE (Windows .exe, .dll, .scr,
 * .pif, .com in PE form), ELF, Mach-O, a Java archive, a Windows shortcut,
 * an MSI installer. */
bool mx_magic_is_executable(const char *detected);

#endif
