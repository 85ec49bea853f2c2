/* codes_data.h - the tables scripts/build/gen-codes.py generates (build/generated/smtp_codes_data.c); only codes.c reads them. */
#ifndef MX_SMTP_CODES_DATA_H
#define MX_SMTP_CODES_DATA_H

#include "dissectors/smtp/codes.h"

/* IANA "Enumerated Status Codes", sorted by subject then detail. */
extern const struct mx_enhanced_info mx_codes_enhanced[];
extern const size_t mx_codes_enhanced_n;

/* IANA "Class Sub-Codes", sorted by class. */
extern const struct mx_enhanced_part mx_codes_classes[];
extern const size_t mx_codes_classes_n;

/* IANA "Subject Sub-Codes", sorted by subject. */
extern const struct mx_enhanced_part mx_codes_subjects[];
extern const size_t mx_codes_subjects_n;

/* Reply-code meanings, sorted by code, CSV order kept within a code. */
extern const struct mx_reply_info mx_codes_replies[];
extern const size_t mx_codes_replies_n;

#endif
