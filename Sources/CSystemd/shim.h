// libsystemd: sd-bus (D-Bus) and sd-login (logind's sessions), for desktop notifications.
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>
