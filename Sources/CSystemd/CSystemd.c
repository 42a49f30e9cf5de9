#include "CSystemd.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// The functions used, resolved from libsystemd.so.0 at the first notification.
static struct {
    int (*bus_new)(sd_bus **);
    int (*bus_set_address)(sd_bus *, const char *);
    int (*bus_set_bus_client)(sd_bus *, int);
    int (*bus_start)(sd_bus *);
    sd_bus *(*bus_close_unref)(sd_bus *);
    int (*bus_is_ready)(sd_bus *);
    int (*bus_is_open)(sd_bus *);
    int (*bus_process)(sd_bus *, sd_bus_message **);
    int (*bus_wait)(sd_bus *, uint64_t);
    int (*bus_call)(sd_bus *, sd_bus_message *, uint64_t, sd_bus_error *, sd_bus_message **);
    int (*bus_message_new_method_call)(sd_bus *, sd_bus_message **, const char *, const char *, const char *,
                                       const char *);
    sd_bus_message *(*bus_message_unref)(sd_bus_message *);
    int (*bus_message_append_basic)(sd_bus_message *, char, const void *);
    int (*bus_message_open_container)(sd_bus_message *, char, const char *);
    int (*bus_message_close_container)(sd_bus_message *);
    void (*bus_error_free)(sd_bus_error *);
    int (*get_sessions)(char ***);
    int (*session_is_active)(const char *);
    int (*session_get_type)(const char *, char **);
    int (*session_get_uid)(const char *, uid_t *);
} sd;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[512] = "";

#define RESOLVE(field, name)                                                            \
    if (!(*(void **)&sd.field = dlsym(library, name))) {                                \
        snprintf(load_error, sizeof load_error, "libsystemd.so.0 has no %s", name);     \
        return;                                                                         \
    }

static void load(void) {
    void *library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libsystemd.so.0 (install libsystemd0): %s",
                 why ? why : "unknown error");
        return;
    }
    RESOLVE(bus_new, "sd_bus_new")
    RESOLVE(bus_set_address, "sd_bus_set_address")
    RESOLVE(bus_set_bus_client, "sd_bus_set_bus_client")
    RESOLVE(bus_start, "sd_bus_start")
    RESOLVE(bus_close_unref, "sd_bus_close_unref")
    RESOLVE(bus_is_ready, "sd_bus_is_ready")
    RESOLVE(bus_is_open, "sd_bus_is_open")
    RESOLVE(bus_process, "sd_bus_process")
    RESOLVE(bus_wait, "sd_bus_wait")
    RESOLVE(bus_call, "sd_bus_call")
    RESOLVE(bus_message_new_method_call, "sd_bus_message_new_method_call")
    RESOLVE(bus_message_unref, "sd_bus_message_unref")
    RESOLVE(bus_message_append_basic, "sd_bus_message_append_basic")
    RESOLVE(bus_message_open_container, "sd_bus_message_open_container")
    RESOLVE(bus_message_close_container, "sd_bus_message_close_container")
    RESOLVE(bus_error_free, "sd_bus_error_free")
    RESOLVE(get_sessions, "sd_get_sessions")
    RESOLVE(session_is_active, "sd_session_is_active")
    RESOLVE(session_get_type, "sd_session_get_type")
    RESOLVE(session_get_uid, "sd_session_get_uid")
    load_result = 0;
}

int csd_load(void) {
    pthread_once(&load_once, load);
    return load_result;
}

const char *csd_load_error(void) { return load_error; }

int csd_bus_new(sd_bus **bus) { return sd.bus_new(bus); }
int csd_bus_set_address(sd_bus *bus, const char *address) { return sd.bus_set_address(bus, address); }
int csd_bus_set_bus_client(sd_bus *bus, int b) { return sd.bus_set_bus_client(bus, b); }
int csd_bus_start(sd_bus *bus) { return sd.bus_start(bus); }
sd_bus *csd_bus_close_unref(sd_bus *bus) { return sd.bus_close_unref(bus); }
int csd_bus_is_ready(sd_bus *bus) { return sd.bus_is_ready(bus); }
int csd_bus_is_open(sd_bus *bus) { return sd.bus_is_open(bus); }
int csd_bus_process(sd_bus *bus, sd_bus_message **message) { return sd.bus_process(bus, message); }
int csd_bus_wait(sd_bus *bus, uint64_t timeout_usec) { return sd.bus_wait(bus, timeout_usec); }
int csd_bus_call(sd_bus *bus, sd_bus_message *message, uint64_t usec, sd_bus_error *error, sd_bus_message **reply) {
    return sd.bus_call(bus, message, usec, error, reply);
}
int csd_bus_message_new_method_call(sd_bus *bus, sd_bus_message **message, const char *destination,
                                    const char *path, const char *interface, const char *member) {
    return sd.bus_message_new_method_call(bus, message, destination, path, interface, member);
}
sd_bus_message *csd_bus_message_unref(sd_bus_message *message) { return sd.bus_message_unref(message); }
int csd_bus_message_append_basic(sd_bus_message *message, char type, const void *value) {
    return sd.bus_message_append_basic(message, type, value);
}
int csd_bus_message_open_container(sd_bus_message *message, char type, const char *contents) {
    return sd.bus_message_open_container(message, type, contents);
}
int csd_bus_message_close_container(sd_bus_message *message) { return sd.bus_message_close_container(message); }
void csd_bus_error_free(sd_bus_error *error) { sd.bus_error_free(error); }
int csd_get_sessions(char ***sessions) { return sd.get_sessions(sessions); }
int csd_session_is_active(const char *session) { return sd.session_is_active(session); }
int csd_session_get_type(const char *session, char **type) { return sd.session_get_type(session, type); }
int csd_session_get_uid(const char *session, uid_t *uid) { return sd.session_get_uid(session, uid); }
