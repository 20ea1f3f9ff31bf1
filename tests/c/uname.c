/* uname fields and sysinfo. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) { perror("uname"); return 1; }
    printf("sysname: %s\n", u.sysname);
    printf("nodename: %s\n", u.nodename);
    printf("release: %s\n", u.release);
    printf("version: %s\n", u.version);
    printf("machine: %s\n", u.machine);
    printf("domainname: %s\n", u.domainname);
    struct sysinfo si;
    if (sysinfo(&si) != 0) { perror("sysinfo"); return 1; }
    printf("uptime: %ld\n", si.uptime);
    printf("loads: %lu %lu %lu\n", si.loads[0], si.loads[1], si.loads[2]);
    printf("totalram: %lu freeram: %lu mem_unit: %u\n", si.totalram, si.freeram, si.mem_unit);
    printf("procs: %u\n", si.procs);
    printf("%s\n", si.uptime > 0 && u.sysname[0] ? "ALL OK" : "FAILED");
    return 0;
}
