// libsystemd's sd-bus (D-Bus) and sd-login (logind's sessions), for desktop notifications.
// libsystemd and the libraries it links (libgcrypt, liblzma, libzstd, liblz4, libcap) cost about
// 1.1 MiB of resident memory and a few milliseconds at every start, so it is loaded with dlopen
// at the first notification, never by a run or a command that shows none.
#pragma once
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>

/// Loads libsystemd.so.0, once for the process (thread-safe): 0, or -1 and `csd_load_error`
/// says why.
int csd_load(void);
const char *csd_load_error(void);

// libsystemd's own functions, called through the loaded library (after csd_load succeeded).
int csd_bus_new(sd_bus **bus);
int csd_bus_set_address(sd_bus *bus, const char *address);
int csd_bus_set_bus_client(sd_bus *bus, int b);
int csd_bus_start(sd_bus *bus);
sd_bus *csd_bus_close_unref(sd_bus *bus);
int csd_bus_is_ready(sd_bus *bus);
int csd_bus_is_open(sd_bus *bus);
int csd_bus_process(sd_bus *bus, sd_bus_message **message);
int csd_bus_wait(sd_bus *bus, uint64_t timeout_usec);
int csd_bus_call(sd_bus *bus, sd_bus_message *message, uint64_t usec, sd_bus_error *error, sd_bus_message **reply);
int csd_bus_message_new_method_call(sd_bus *bus, sd_bus_message **message, const char *destination,
                                    const char *path, const char *interface, const char *member);
sd_bus_message *csd_bus_message_unref(sd_bus_message *message);
int csd_bus_message_append_basic(sd_bus_message *message, char type, const void *value);
int csd_bus_message_open_container(sd_bus_message *message, char type, const char *contents);
int csd_bus_message_close_container(sd_bus_message *message);
void csd_bus_error_free(sd_bus_error *error);
int csd_get_sessions(char ***sessions);
int csd_session_is_active(const char *session);
int csd_session_get_type(const char *session, char **type);
int csd_session_get_uid(const char *session, uid_t *uid);
