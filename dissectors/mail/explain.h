/* explain.h - what each command asks for, for teaching (--explain): SMTP
 * (RFC 5321 and extensions), POP3 (RFC 1939) and IMAP (RFC 9051). */
#ifndef MX_EXPLAIN_H
#define MX_EXPLAIN_H

/* The explanation of a command verb (upper case), or NULL when unknown. */
const char *mx_explain_smtp(const char *verb);
const char *mx_explain_pop3(const char *verb);
const char *mx_explain_imap(const char *command);

#endif
