// TLS client connections through OpenSSL's libssl, loaded with dlopen at the first use (like
// libcurl in CCurl): a run without FTPS never maps it. Opaque pointers only; the Swift side
// never sees an OpenSSL type.
#ifndef CTLS_H
#define CTLS_H

#include <stddef.h>

// Results of the I/O calls besides a byte count or 1 (done).
#define CTLS_WANT_READ (-2)
#define CTLS_WANT_WRITE (-3)
#define CTLS_CLOSED (-4)   // the peer closed the TLS session (close_notify)
#define CTLS_FAILED (-1)   // ctls_error says why

// 0 when libssl.so.3 is loaded and its functions found; else -1 and ctls_error says why.
int ctls_load(void);

// The last failure on this thread: OpenSSL's error queue, a certificate's verify result, or
// the loader's message.
const char *ctls_error(void);

// A client context: certificates checked against ca_file (a PEM file), or the system's when
// NULL; TLS 1.2 at least; sessions kept for reuse. NULL on failure.
void *ctls_context_new(const char *ca_file);
void ctls_context_free(void *context);

// A TLS client on a connected, non-blocking socket; the server's certificate must name host
// (a DNS name or an IP address). session: one to resume (NULL: a new one). NULL on failure.
void *ctls_new(void *context, int fd, const char *host, void *session);
void ctls_free(void *ssl);

// The handshake: 1 when done, else CTLS_WANT_READ / CTLS_WANT_WRITE (poll, call again) or
// CTLS_FAILED.
int ctls_handshake(void *ssl);

// Bytes read (> 0), CTLS_CLOSED, CTLS_WANT_READ / CTLS_WANT_WRITE, or CTLS_FAILED.
long ctls_read(void *ssl, void *buffer, size_t count);
// Bytes written (> 0), CTLS_WANT_READ / CTLS_WANT_WRITE, or CTLS_FAILED.
long ctls_write(void *ssl, const void *buffer, size_t count);
// Sends close_notify (once; the answer is not awaited).
void ctls_close(void *ssl);

// Bytes already decrypted and waiting (SSL_pending).
int ctls_pending(void *ssl);

// The session, to resume on another connection (a reference the caller frees).
void *ctls_session(void *ssl);
void ctls_session_free(void *session);
// 1 when the handshake resumed the session it was given.
int ctls_session_reused(void *ssl);

#endif
