// libssh2 (an SSH client library) for the SFTP backend, loaded with dlopen at the first SFTP
// connection: libssh2 and the libraries it links (libssl, libcrypto, zlib) cost resident memory a
// run without an SFTP endpoint need not pay. Headers from libssh2-1-dev, library from libssh2-1.
//
// A session is opened in one call (connect, handshake, host key check, login, SFTP subsystem);
// the SFTP requests are libssh2's own functions, called through the loaded library, in blocking
// mode with the session's timeout: a request that waits longer than that fails with
// LIBSSH2_ERROR_TIMEOUT instead of hanging.
#pragma once
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <stddef.h>
#include <sys/types.h>

/// Loads libssh2 (dlopen "libssh2.so.1") and runs libssh2_init, once for the process
/// (thread-safe). Returns 0, or -1 when it cannot be loaded; `cssh2_load_error` then says why.
int cssh2_load(void);
const char *cssh2_load_error(void);

/// How opening a session ended.
typedef enum {
    CSSH2_OPENED = 0,
    /// The server cannot be reached, or the connection broke during the handshake.
    CSSH2_UNREACHABLE,
    /// The server's host key is not in the known_hosts file.
    CSSH2_HOST_KEY_UNKNOWN,
    /// The known_hosts file holds another key of that type for the server.
    CSSH2_HOST_KEY_CHANGED,
    /// No login method was accepted.
    CSSH2_LOGIN_REFUSED,
    /// The SFTP subsystem could not be started.
    CSSH2_NO_SFTP,
    /// libssh2 cannot be loaded here.
    CSSH2_NO_LIBRARY,
} cssh2_open_result;

/// An open session: its socket, libssh2's session and SFTP instance.
typedef struct cssh2_connection {
    int socket;
    LIBSSH2_SESSION *session;
    LIBSSH2_SFTP *sftp;
    /// The password the keyboard-interactive login answers with (owned by the caller).
    const char *password;
} cssh2_connection;

/// Connects to `host`:`port` (within `connect_timeout_ms`, handshake and login included),
/// checks the server's host key against `known_hosts` (only a key there for the server is
/// accepted; the file is never written), logs in `username` with `key_file` (its passphrase:
/// `password`; `key_file`.pub is used where it exists), the keys of a running ssh-agent when
/// `use_agent`, then `password` (password, then keyboard-interactive), whichever the server
/// accepts first, and starts SFTP. Requests then time out after `timeout_ms`.
/// On failure `connection` holds nothing to close and `error` says why.
cssh2_open_result cssh2_open(cssh2_connection *connection, const char *host, int port, const char *username,
                             const char *key_file, const char *password, int use_agent, const char *known_hosts,
                             int connect_timeout_ms, int timeout_ms, char *error, size_t error_size);
/// Ends the session (politely where it still works) and closes the socket.
void cssh2_close(cssh2_connection *connection);

/// The session's last error: libssh2's code (LIBSSH2_ERROR_*), its message in `*message`.
int cssh2_last_error(cssh2_connection *connection, const char **message);
/// The status code of the SFTP server's last failure (LIBSSH2_FX_*).
unsigned long cssh2_sftp_last_error(cssh2_connection *connection);

// libssh2's SFTP functions (libssh2_sftp.h says what they do).
LIBSSH2_SFTP_HANDLE *cssh2_sftp_open(cssh2_connection *connection, const char *path, unsigned int path_length,
                                     unsigned long flags, long mode, int open_type);
int cssh2_sftp_close(LIBSSH2_SFTP_HANDLE *handle);
ssize_t cssh2_sftp_read(LIBSSH2_SFTP_HANDLE *handle, char *buffer, size_t length);
ssize_t cssh2_sftp_write(LIBSSH2_SFTP_HANDLE *handle, const char *buffer, size_t length);
int cssh2_sftp_readdir(LIBSSH2_SFTP_HANDLE *handle, char *buffer, size_t length,
                       LIBSSH2_SFTP_ATTRIBUTES *attributes);
int cssh2_sftp_fstat(LIBSSH2_SFTP_HANDLE *handle, LIBSSH2_SFTP_ATTRIBUTES *attributes, int set);
int cssh2_sftp_stat(cssh2_connection *connection, const char *path, unsigned int path_length, int stat_type,
                    LIBSSH2_SFTP_ATTRIBUTES *attributes);
int cssh2_sftp_rename(cssh2_connection *connection, const char *source, unsigned int source_length,
                      const char *destination, unsigned int destination_length, long flags);
int cssh2_sftp_unlink(cssh2_connection *connection, const char *path, unsigned int path_length);
int cssh2_sftp_mkdir(cssh2_connection *connection, const char *path, unsigned int path_length, long mode);
int cssh2_sftp_rmdir(cssh2_connection *connection, const char *path, unsigned int path_length);
int cssh2_sftp_symlink(cssh2_connection *connection, const char *path, unsigned int path_length, char *target,
                       unsigned int target_length, int link_type);
