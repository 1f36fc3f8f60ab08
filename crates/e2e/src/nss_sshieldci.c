/* libnss_sshieldci.so.2: a name service that, like SSSD with `case_sensitive = false` or
 * winbind, answers for any spelling of an account name with the account as /etc/passwd (and
 * /etc/shadow) spell it. Built and used only by sshield's end-to-end tests, inside one test
 * sshd's private mount namespace (see nss.rs); never installed. */
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* One getXXnam_r: the first entry of FILE whose NAME_FIELD equals `name` ignoring case.
 * ERANGE asks glibc to call again with a larger buffer. Names starting with `sshield-nsfail`
 * stand for a name service that is down (SSSD unreachable): an error, not "no such user". */
#define LOOKUP(FUNCTION, FILE_PATH, TYPE, NEXT_ENTRY, NAME_FIELD)                        \
    enum nss_status FUNCTION(const char *name, struct TYPE *result, char *buffer,        \
                             size_t buflen, int *errnop)                                 \
    {                                                                                    \
        if (strncmp(name, "sshield-nsfail", 14) == 0) {                                  \
            *errnop = EIO;                                                               \
            return NSS_STATUS_UNAVAIL;                                                   \
        }                                                                                \
        FILE *f = fopen(FILE_PATH, "re");                                                \
        if (f == NULL) {                                                                 \
            *errnop = errno;                                                             \
            return NSS_STATUS_UNAVAIL;                                                   \
        }                                                                                \
        struct TYPE *entry;                                                              \
        enum nss_status status = NSS_STATUS_NOTFOUND;                                    \
        int rc;                                                                          \
        while ((rc = NEXT_ENTRY(f, result, buffer, buflen, &entry)) == 0) {              \
            if (strcasecmp(entry->NAME_FIELD, name) == 0) {                              \
                status = NSS_STATUS_SUCCESS;                                             \
                break;                                                                   \
            }                                                                            \
        }                                                                                \
        if (rc == ERANGE) {                                                              \
            *errnop = ERANGE;                                                            \
            status = NSS_STATUS_TRYAGAIN;                                                \
        } else if (status == NSS_STATUS_NOTFOUND) {                                      \
            *errnop = ENOENT;                                                            \
        }                                                                                \
        fclose(f);                                                                       \
        return status;                                                                   \
    }

LOOKUP(_nss_sshieldci_getpwnam_r, "/etc/passwd", passwd, fgetpwent_r, pw_name)
LOOKUP(_nss_sshieldci_getspnam_r, "/etc/shadow", spwd, fgetspent_r, sp_namp)
