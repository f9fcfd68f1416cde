#ifndef SLUICE_CHIREDIS_SHIM_H
#define SLUICE_CHIREDIS_SHIM_H

/* Debian's hiredis 0.14.1. Swift cannot import its variadic functions or its
 * function-like macros, so the few that Sluice needs are inline functions here. */
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/* Error text of a reader after redisReaderGetReply returned REDIS_ERR. */
static inline const char *sluice_reader_error(const redisReader *reader) {
    return reader->errstr;
}

/* Error code (REDIS_ERR_PROTOCOL, ...) of a reader. */
static inline int sluice_reader_error_code(const redisReader *reader) {
    return reader->err;
}

/* Lifts the default 16 KiB cap on the unused part of the reader's buffer,
 * which otherwise makes the reader shrink and regrow its buffer under load. */
static inline void sluice_reader_set_max_buf(redisReader *reader, size_t max_buf) {
    reader->maxbuf = max_buf;
}

/* The element at index `i` of an array reply. */
static inline redisReply *sluice_reply_element(const redisReply *reply, size_t i) {
    return reply->element[i];
}

#endif
