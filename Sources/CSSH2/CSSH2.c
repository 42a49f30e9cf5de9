#include "CSSH2.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// The functions used, resolved from libssh2.so.1 at the first SFTP connection.
#define FUNCTIONS(X)                                                                                                   \
    X(libssh2_init)                                                                                                    \
    X(libssh2_session_init_ex)                                                                                         \
    X(libssh2_session_set_timeout)                                                                                     \
    X(libssh2_session_method_pref)                                                                                     \
    X(libssh2_session_handshake)                                                                                       \
    X(libssh2_session_hostkey)                                                                                         \
    X(libssh2_session_last_error)                                                                                      \
    X(libssh2_session_disconnect_ex)                                                                                   \
    X(libssh2_session_free)                                                                                            \
    X(libssh2_knownhost_init)                                                                                          \
    X(libssh2_knownhost_readfile)                                                                                      \
    X(libssh2_knownhost_get)                                                                                           \
    X(libssh2_knownhost_checkp)                                                                                        \
    X(libssh2_knownhost_free)                                                                                          \
    X(libssh2_userauth_list)                                                                                           \
    X(libssh2_userauth_authenticated)                                                                                  \
    X(libssh2_userauth_publickey_fromfile_ex)                                                                          \
    X(libssh2_userauth_password_ex)                                                                                    \
    X(libssh2_userauth_keyboard_interactive_ex)                                                                        \
    X(libssh2_agent_init)                                                                                              \
    X(libssh2_agent_connect)                                                                                           \
    X(libssh2_agent_list_identities)                                                                                   \
    X(libssh2_agent_get_identity)                                                                                      \
    X(libssh2_agent_userauth)                                                                                          \
    X(libssh2_agent_disconnect)                                                                                        \
    X(libssh2_agent_free)                                                                                              \
    X(libssh2_sftp_init)                                                                                               \
    X(libssh2_sftp_shutdown)                                                                                           \
    X(libssh2_sftp_last_error)                                                                                         \
    X(libssh2_sftp_open_ex)                                                                                            \
    X(libssh2_sftp_close_handle)                                                                                       \
    X(libssh2_sftp_read)                                                                                               \
    X(libssh2_sftp_write)                                                                                              \
    X(libssh2_sftp_readdir_ex)                                                                                         \
    X(libssh2_sftp_fstat_ex)                                                                                           \
    X(libssh2_sftp_stat_ex)                                                                                            \
    X(libssh2_sftp_rename_ex)                                                                                          \
    X(libssh2_sftp_unlink_ex)                                                                                          \
    X(libssh2_sftp_mkdir_ex)                                                                                           \
    X(libssh2_sftp_rmdir_ex)                                                                                           \
    X(libssh2_sftp_symlink_ex)

#define DECLARE(name) __typeof__(name) *name;
static struct {
    FUNCTIONS(DECLARE)
} ssh;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[512] = "";

static void load(void) {
    void *library = dlopen("libssh2.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libssh2.so.1 (install libssh2-1): %s",
                 why ? why : "unknown error");
        return;
    }
#define RESOLVE(name)                                                                                                  \
    if (!(*(void **)&ssh.name = dlsym(library, #name))) {                                                              \
        snprintf(load_error, sizeof load_error, "libssh2.so.1 has no %s", #name);                                      \
        return;                                                                                                        \
    }
    FUNCTIONS(RESOLVE)
    if (ssh.libssh2_init(0) != 0) {
        snprintf(load_error, sizeof load_error, "libssh2_init failed");
        return;
    }
    load_result = 0;
}

int cssh2_load(void) {
    pthread_once(&load_once, load);
    return load_result;
}

const char *cssh2_load_error(void) { return load_error; }

static long milliseconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/// A connected TCP socket (blocking, no Nagle delay), or -1 with `error` set.
static int tcp_connect(const char *host, int port, int timeout_ms, char *error, size_t error_size) {
    struct addrinfo hints = {0}, *addresses = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int code = getaddrinfo(host, service, &hints, &addresses);
    if (code != 0) {
        snprintf(error, error_size, "cannot resolve %s: %s", host, gai_strerror(code));
        return -1;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int fd = -1, last = ETIMEDOUT;
    for (struct addrinfo *a = addresses; a && fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (s < 0) {
            last = errno;
            continue;
        }
        if (connect(s, a->ai_addr, a->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                last = errno;
                close(s);
                continue;
            }
            struct pollfd p = {.fd = s, .events = POLLOUT};
            int n;
            do {
                long left = timeout_ms - milliseconds_since(&start);
                n = left > 0 ? poll(&p, 1, (int)left) : 0;
            } while (n < 0 && errno == EINTR);
            int failure = 0;
            socklen_t length = sizeof failure;
            if (n <= 0) failure = n == 0 ? ETIMEDOUT : errno;
            else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &failure, &length) != 0) failure = errno;
            if (failure) {
                last = failure;
                close(s);
                continue;
            }
        }
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd = s;
    }
    freeaddrinfo(addresses);
    if (fd < 0) snprintf(error, error_size, "cannot connect to %s port %d: %s", host, port, strerror(last));
    return fd;
}

/// The known_hosts key type of a host key type.
static int known_key_type(int type) {
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

/// The host key algorithms of a known_hosts key type.
static const char *algorithms(int known_type) {
    switch (known_type & LIBSSH2_KNOWNHOST_KEY_MASK) {
    case LIBSSH2_KNOWNHOST_KEY_SSHRSA: return "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
    case LIBSSH2_KNOWNHOST_KEY_SSHDSS: return "ssh-dss";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
    case LIBSSH2_KNOWNHOST_KEY_ED25519: return "ssh-ed25519";
    default: return NULL;
    }
}

/// Asks the server for a host key of a type known_hosts holds for it under its plain name (as
/// ssh does): a server with several keys could otherwise show one of another type, unknown here.
/// Hashed names cannot be told apart: the server's choice stands.
static void prefer_known_key_types(cssh2_connection *c, LIBSSH2_KNOWNHOSTS *hosts, const char *host, int port) {
    char bracketed[300];
    snprintf(bracketed, sizeof bracketed, "[%s]:%d", host, port);
    const char *name = port == 22 ? host : bracketed;
    char preference[512] = "";
    struct libssh2_knownhost *entry = NULL, *previous = NULL;
    while (ssh.libssh2_knownhost_get(hosts, &entry, previous) == 0) {
        previous = entry;
        if (!entry->name || strcmp(entry->name, name) != 0) continue;
        const char *names = algorithms(entry->typemask);
        if (!names || strstr(preference, names)) continue;
        if (strlen(preference) + strlen(names) + 2 > sizeof preference) break;
        if (preference[0]) strcat(preference, ",");
        strcat(preference, names);
    }
    if (preference[0]) ssh.libssh2_session_method_pref(c->session, LIBSSH2_METHOD_HOSTKEY, preference);
}

static void answer_with_password(const char *name, int name_length, const char *instruction, int instruction_length,
                                 int count, const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                                 LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract) {
    (void)name, (void)name_length, (void)instruction, (void)instruction_length, (void)prompts;
    cssh2_connection *c = *abstract;
    for (int i = 0; i < count; i++) {
        responses[i].text = strdup(c->password ? c->password : "");
        responses[i].length = responses[i].text ? (unsigned int)strlen(responses[i].text) : 0;
    }
}

static int login_with_agent(cssh2_connection *c, const char *username) {
    LIBSSH2_AGENT *agent = ssh.libssh2_agent_init(c->session);
    if (!agent) return -1;
    int result = -1;
    if (ssh.libssh2_agent_connect(agent) == 0 && ssh.libssh2_agent_list_identities(agent) == 0) {
        struct libssh2_agent_publickey *identity = NULL, *previous = NULL;
        while (ssh.libssh2_agent_get_identity(agent, &identity, previous) == 0) {
            previous = identity;
            if (ssh.libssh2_agent_userauth(agent, username, identity) == 0) {
                result = 0;
                break;
            }
        }
        ssh.libssh2_agent_disconnect(agent);
    }
    ssh.libssh2_agent_free(agent);
    return result;
}

static cssh2_open_result login(cssh2_connection *c, const char *username, const char *key_file, const char *password,
                               int use_agent, char *error, size_t error_size) {
    unsigned int length = (unsigned int)strlen(username);
    const char *methods = ssh.libssh2_userauth_list(c->session, username, length);
    if (!methods) {
        if (ssh.libssh2_userauth_authenticated(c->session)) return CSSH2_OPENED;
        methods = "";
    }
    const char *why = NULL;
    if (key_file && strstr(methods, "publickey")) {
        char public_key[4096];
        snprintf(public_key, sizeof public_key, "%s.pub", key_file);
        const char *public_file = access(public_key, R_OK) == 0 ? public_key : NULL;
        if (ssh.libssh2_userauth_publickey_fromfile_ex(c->session, username, length, public_file, key_file,
                                                          password) == 0)
            return CSSH2_OPENED;
        ssh.libssh2_session_last_error(c->session, (char **)&why, NULL, 0);
    }
    if (use_agent && strstr(methods, "publickey") && login_with_agent(c, username) == 0) return CSSH2_OPENED;
    if (password && strstr(methods, "password")) {
        if (ssh.libssh2_userauth_password_ex(c->session, username, length, password,
                                              (unsigned int)strlen(password), NULL) == 0)
            return CSSH2_OPENED;
        ssh.libssh2_session_last_error(c->session, (char **)&why, NULL, 0);
    }
    if (password && strstr(methods, "keyboard-interactive")) {
        if (ssh.libssh2_userauth_keyboard_interactive_ex(c->session, username, length, answer_with_password) == 0)
            return CSSH2_OPENED;
        ssh.libssh2_session_last_error(c->session, (char **)&why, NULL, 0);
    }
    snprintf(error, error_size, "%s (the server offers: %s)", why ? why : "no login method to try",
             methods[0] ? methods : "nothing");
    return CSSH2_LOGIN_REFUSED;
}

static void end(cssh2_connection *c, const char *why) {
    if (c->sftp) ssh.libssh2_sftp_shutdown(c->sftp);
    if (c->session) {
        ssh.libssh2_session_disconnect_ex(c->session, SSH_DISCONNECT_BY_APPLICATION, why, "");
        ssh.libssh2_session_free(c->session);
    }
    if (c->socket >= 0) close(c->socket);
    c->sftp = NULL;
    c->session = NULL;
    c->socket = -1;
}

static cssh2_open_result last_error(cssh2_connection *c, cssh2_open_result result, const char *what, char *error,
                                    size_t error_size) {
    char *message = NULL;
    ssh.libssh2_session_last_error(c->session, &message, NULL, 0);
    snprintf(error, error_size, "%s: %s", what, message ? message : "unknown error");
    return result;
}

static cssh2_open_result open_session(cssh2_connection *c, const char *host, int port, const char *username,
                                      const char *key_file, const char *password, int use_agent,
                                      const char *known_hosts, int connect_timeout_ms, int timeout_ms, char *error,
                                      size_t error_size) {
    c->socket = tcp_connect(host, port, connect_timeout_ms, error, error_size);
    if (c->socket < 0) return CSSH2_UNREACHABLE;
    c->session = ssh.libssh2_session_init_ex(NULL, NULL, NULL, c);
    if (!c->session) {
        snprintf(error, error_size, "cannot start an SSH session");
        return CSSH2_UNREACHABLE;
    }
    ssh.libssh2_session_set_timeout(c->session, connect_timeout_ms);

    LIBSSH2_KNOWNHOSTS *hosts = ssh.libssh2_knownhost_init(c->session);
    if (!hosts) return last_error(c, CSSH2_UNREACHABLE, "known hosts", error, error_size);
    // A missing or unreadable file knows no key: the check below refuses the server.
    ssh.libssh2_knownhost_readfile(hosts, known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    prefer_known_key_types(c, hosts, host, port);

    if (ssh.libssh2_session_handshake(c->session, c->socket) != 0) {
        ssh.libssh2_knownhost_free(hosts);
        return last_error(c, CSSH2_UNREACHABLE, "SSH handshake", error, error_size);
    }
    size_t key_length = 0;
    int key_type = 0;
    const char *key = ssh.libssh2_session_hostkey(c->session, &key_length, &key_type);
    int check = LIBSSH2_KNOWNHOST_CHECK_FAILURE;
    if (key) {
        check = ssh.libssh2_knownhost_checkp(hosts, host, port, key, key_length,
                                             LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                                 known_key_type(key_type),
                                             NULL);
    }
    ssh.libssh2_knownhost_free(hosts);
    if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) return CSSH2_HOST_KEY_CHANGED;
    if (check != LIBSSH2_KNOWNHOST_CHECK_MATCH) return CSSH2_HOST_KEY_UNKNOWN;

    cssh2_open_result result = login(c, username, key_file, password, use_agent, error, error_size);
    if (result != CSSH2_OPENED) return result;
    c->sftp = ssh.libssh2_sftp_init(c->session);
    if (!c->sftp) return last_error(c, CSSH2_NO_SFTP, "SFTP", error, error_size);
    ssh.libssh2_session_set_timeout(c->session, timeout_ms);
    return CSSH2_OPENED;
}

cssh2_open_result cssh2_open(cssh2_connection *c, const char *host, int port, const char *username,
                             const char *key_file, const char *password, int use_agent, const char *known_hosts,
                             int connect_timeout_ms, int timeout_ms, char *error, size_t error_size) {
    c->socket = -1;
    c->session = NULL;
    c->sftp = NULL;
    c->password = password;
    if (error_size) error[0] = 0;
    if (cssh2_load() != 0) {
        snprintf(error, error_size, "%s", load_error);
        return CSSH2_NO_LIBRARY;
    }
    cssh2_open_result result = open_session(c, host, port, username, key_file, password, use_agent, known_hosts,
                                            connect_timeout_ms, timeout_ms, error, error_size);
    if (result != CSSH2_OPENED) end(c, "refused");
    return result;
}

void cssh2_close(cssh2_connection *c) { end(c, "done"); }

int cssh2_last_error(cssh2_connection *c, const char **message) {
    char *text = NULL;
    int code = c->session ? ssh.libssh2_session_last_error(c->session, &text, NULL, 0) : LIBSSH2_ERROR_SOCKET_NONE;
    *message = text ? text : "no session";
    return code;
}

unsigned long cssh2_sftp_last_error(cssh2_connection *c) { return c->sftp ? ssh.libssh2_sftp_last_error(c->sftp) : 0; }

LIBSSH2_SFTP_HANDLE *cssh2_sftp_open(cssh2_connection *c, const char *path, unsigned int path_length,
                                     unsigned long flags, long mode, int open_type) {
    return ssh.libssh2_sftp_open_ex(c->sftp, path, path_length, flags, mode, open_type);
}
int cssh2_sftp_close(LIBSSH2_SFTP_HANDLE *handle) { return ssh.libssh2_sftp_close_handle(handle); }
ssize_t cssh2_sftp_read(LIBSSH2_SFTP_HANDLE *handle, char *buffer, size_t length) {
    return ssh.libssh2_sftp_read(handle, buffer, length);
}
ssize_t cssh2_sftp_write(LIBSSH2_SFTP_HANDLE *handle, const char *buffer, size_t length) {
    return ssh.libssh2_sftp_write(handle, buffer, length);
}
int cssh2_sftp_readdir(LIBSSH2_SFTP_HANDLE *handle, char *buffer, size_t length,
                       LIBSSH2_SFTP_ATTRIBUTES *attributes) {
    return ssh.libssh2_sftp_readdir_ex(handle, buffer, length, NULL, 0, attributes);
}
int cssh2_sftp_fstat(LIBSSH2_SFTP_HANDLE *handle, LIBSSH2_SFTP_ATTRIBUTES *attributes, int set) {
    return ssh.libssh2_sftp_fstat_ex(handle, attributes, set);
}
int cssh2_sftp_stat(cssh2_connection *c, const char *path, unsigned int path_length, int stat_type,
                    LIBSSH2_SFTP_ATTRIBUTES *attributes) {
    return ssh.libssh2_sftp_stat_ex(c->sftp, path, path_length, stat_type, attributes);
}
int cssh2_sftp_rename(cssh2_connection *c, const char *source, unsigned int source_length, const char *destination,
                      unsigned int destination_length, long flags) {
    return ssh.libssh2_sftp_rename_ex(c->sftp, source, source_length, destination, destination_length, flags);
}
int cssh2_sftp_unlink(cssh2_connection *c, const char *path, unsigned int path_length) {
    return ssh.libssh2_sftp_unlink_ex(c->sftp, path, path_length);
}
int cssh2_sftp_mkdir(cssh2_connection *c, const char *path, unsigned int path_length, long mode) {
    return ssh.libssh2_sftp_mkdir_ex(c->sftp, path, path_length, mode);
}
int cssh2_sftp_rmdir(cssh2_connection *c, const char *path, unsigned int path_length) {
    return ssh.libssh2_sftp_rmdir_ex(c->sftp, path, path_length);
}
int cssh2_sftp_symlink(cssh2_connection *c, const char *path, unsigned int path_length, char *target,
                       unsigned int target_length, int link_type) {
    return ssh.libssh2_sftp_symlink_ex(c->sftp, path, path_length, target, target_length, link_type);
}
