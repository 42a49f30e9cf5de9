// Hand-written because OpenSSL's own headers define most of what is needed as macros over
// SSL_ctrl, and because libssl is loaded only when a connection needs TLS (a local run never
// pays for mapping it and libcrypto): the few functions used are resolved here by name.
#include "CTLS.h"
#include <arpa/inet.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct ssl_method_st SSL_METHOD;
typedef struct X509_VERIFY_PARAM_st X509_VERIFY_PARAM;

// Constants of OpenSSL 3's ABI (openssl/ssl.h, tls1.h, prov_ssl.h, x509_vfy.h).
enum {
    SSL_VERIFY_PEER = 0x01,
    SSL_ERROR_SSL = 1,
    SSL_ERROR_WANT_READ = 2,
    SSL_ERROR_WANT_WRITE = 3,
    SSL_ERROR_SYSCALL = 5,
    SSL_ERROR_ZERO_RETURN = 6,
    SSL_CTRL_SET_SESS_CACHE_MODE = 44,
    SSL_CTRL_SET_TLSEXT_HOSTNAME = 55,
    SSL_CTRL_SET_MIN_PROTO_VERSION = 123,
    SSL_SESS_CACHE_CLIENT = 0x0001,
    TLSEXT_NAMETYPE_host_name = 0,
    TLS1_2_VERSION = 0x0303,
    X509_V_OK = 0,
};

static struct {
    const SSL_METHOD *(*TLS_client_method)(void);
    SSL_CTX *(*SSL_CTX_new)(const SSL_METHOD *);
    void (*SSL_CTX_free)(SSL_CTX *);
    long (*SSL_CTX_ctrl)(SSL_CTX *, int, long, void *);
    void (*SSL_CTX_set_verify)(SSL_CTX *, int, void *);
    int (*SSL_CTX_load_verify_locations)(SSL_CTX *, const char *, const char *);
    int (*SSL_CTX_set_default_verify_paths)(SSL_CTX *);
    SSL *(*SSL_new)(SSL_CTX *);
    void (*SSL_free)(SSL *);
    int (*SSL_set_fd)(SSL *, int);
    long (*SSL_ctrl)(SSL *, int, long, void *);
    int (*SSL_set1_host)(SSL *, const char *);
    X509_VERIFY_PARAM *(*SSL_get0_param)(SSL *);
    int (*X509_VERIFY_PARAM_set1_ip_asc)(X509_VERIFY_PARAM *, const char *);
    int (*SSL_set_session)(SSL *, SSL_SESSION *);
    SSL_SESSION *(*SSL_get1_session)(SSL *);
    void (*SSL_SESSION_free)(SSL_SESSION *);
    int (*SSL_session_reused)(const SSL *);
    int (*SSL_connect)(SSL *);
    int (*SSL_read)(SSL *, void *, int);
    int (*SSL_write)(SSL *, const void *, int);
    int (*SSL_pending)(const SSL *);
    int (*SSL_shutdown)(SSL *);
    int (*SSL_get_error)(const SSL *, int);
    long (*SSL_get_verify_result)(const SSL *);
    const char *(*X509_verify_cert_error_string)(long);
    unsigned long (*ERR_get_error)(void);
    void (*ERR_error_string_n)(unsigned long, char *, size_t);
    void (*ERR_clear_error)(void);
} tls;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[256] = "";
static __thread char last_error[512];

#define RESOLVE(name)                                                                   \
    if (!(*(void **)&tls.name = dlsym(library, #name))) {                               \
        snprintf(load_error, sizeof load_error, "libssl.so.3 has no %s", #name);         \
        return;                                                                         \
    }

static void load(void) {
    void *library = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libssl.so.3 (install libssl3): %s",
                 why ? why : "unknown error");
        return;
    }
    // dlsym on the handle also finds what libssl's own dependency, libcrypto, defines.
    RESOLVE(TLS_client_method) RESOLVE(SSL_CTX_new) RESOLVE(SSL_CTX_free) RESOLVE(SSL_CTX_ctrl)
    RESOLVE(SSL_CTX_set_verify) RESOLVE(SSL_CTX_load_verify_locations)
    RESOLVE(SSL_CTX_set_default_verify_paths) RESOLVE(SSL_new) RESOLVE(SSL_free) RESOLVE(SSL_set_fd)
    RESOLVE(SSL_ctrl) RESOLVE(SSL_set1_host) RESOLVE(SSL_get0_param)
    RESOLVE(X509_VERIFY_PARAM_set1_ip_asc) RESOLVE(SSL_set_session) RESOLVE(SSL_get1_session)
    RESOLVE(SSL_SESSION_free) RESOLVE(SSL_session_reused) RESOLVE(SSL_connect) RESOLVE(SSL_read)
    RESOLVE(SSL_write) RESOLVE(SSL_pending) RESOLVE(SSL_shutdown) RESOLVE(SSL_get_error)
    RESOLVE(SSL_get_verify_result) RESOLVE(X509_verify_cert_error_string) RESOLVE(ERR_get_error)
    RESOLVE(ERR_error_string_n) RESOLVE(ERR_clear_error)
    load_result = 0;
}

int ctls_load(void) {
    pthread_once(&load_once, load);
    if (load_result != 0) snprintf(last_error, sizeof last_error, "%s", load_error);
    return load_result;
}

const char *ctls_error(void) { return last_error; }

// Records OpenSSL's first queued error (or `what` alone) as this thread's last error.
static void record(const char *what) {
    unsigned long code = tls.ERR_get_error();
    if (code) {
        char text[256];
        tls.ERR_error_string_n(code, text, sizeof text);
        snprintf(last_error, sizeof last_error, "%s: %s", what, text);
    } else {
        snprintf(last_error, sizeof last_error, "%s", what);
    }
    tls.ERR_clear_error();
}

void *ctls_context_new(const char *ca_file) {
    if (ctls_load() != 0) return NULL;
    SSL_CTX *context = tls.SSL_CTX_new(tls.TLS_client_method());
    if (!context) { record("cannot create a TLS context"); return NULL; }
    tls.SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    tls.SSL_CTX_ctrl(context, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_CLIENT, NULL);
    tls.SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    int loaded = ca_file ? tls.SSL_CTX_load_verify_locations(context, ca_file, NULL)
                         : tls.SSL_CTX_set_default_verify_paths(context);
    if (loaded != 1) {
        record(ca_file ? "cannot read the CA file" : "cannot read the system's certificates");
        tls.SSL_CTX_free(context);
        return NULL;
    }
    return context;
}

void ctls_context_free(void *context) { if (context) tls.SSL_CTX_free(context); }

void *ctls_new(void *context, int fd, const char *host, void *session) {
    SSL *ssl = tls.SSL_new(context);
    if (!ssl) { record("cannot create a TLS connection"); return NULL; }
    unsigned char address[16];
    int isAddress = inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1;
    int ok = tls.SSL_set_fd(ssl, fd) == 1;
    if (ok && isAddress) {
        ok = tls.X509_VERIFY_PARAM_set1_ip_asc(tls.SSL_get0_param(ssl), host) == 1;
    } else if (ok) {
        // The name the certificate must hold, and the one the server is told (SNI).
        ok = tls.SSL_set1_host(ssl, host) == 1 &&
             tls.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)host) == 1;
    }
    if (ok && session) ok = tls.SSL_set_session(ssl, session) == 1;
    if (!ok) { record("cannot set up the TLS connection"); tls.SSL_free(ssl); return NULL; }
    return ssl;
}

void ctls_free(void *ssl) { if (ssl) tls.SSL_free(ssl); }

// Maps a failed call's result to the CTLS codes, recording why where it failed.
static long outcome(SSL *ssl, int result, const char *what) {
    switch (tls.SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ: return CTLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return CTLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return CTLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (tls.ERR_get_error() == 0) {
            snprintf(last_error, sizeof last_error, "%s: the connection was closed", what);
            return CTLS_FAILED;
        }
        /* fall through */
    default: {
        long verify = tls.SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            snprintf(last_error, sizeof last_error, "the server's certificate: %s",
                     tls.X509_verify_cert_error_string(verify));
            tls.ERR_clear_error();
        } else {
            record(what);
        }
        return CTLS_FAILED;
    }
    }
}

int ctls_handshake(void *ssl) {
    int result = tls.SSL_connect(ssl);
    return result == 1 ? 1 : (int)outcome(ssl, result, "TLS handshake");
}

long ctls_read(void *ssl, void *buffer, size_t count) {
    int result = tls.SSL_read(ssl, buffer, count > 1 << 30 ? 1 << 30 : (int)count);
    return result > 0 ? result : outcome(ssl, result, "TLS read");
}

long ctls_write(void *ssl, const void *buffer, size_t count) {
    int result = tls.SSL_write(ssl, buffer, count > 1 << 30 ? 1 << 30 : (int)count);
    return result > 0 ? result : outcome(ssl, result, "TLS write");
}

void ctls_close(void *ssl) {
    tls.SSL_shutdown(ssl);
    tls.ERR_clear_error();
}

int ctls_pending(void *ssl) { return tls.SSL_pending(ssl); }

void *ctls_session(void *ssl) { return tls.SSL_get1_session(ssl); }
void ctls_session_free(void *session) { if (session) tls.SSL_SESSION_free(session); }
int ctls_session_reused(void *ssl) { return tls.SSL_session_reused(ssl); }
