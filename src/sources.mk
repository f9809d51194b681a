# src/sources.mk - the one list of the core's source files, read by
# CMakeLists.txt (user space) and by kernel/Makefile and kernel/Kbuild
# (labyrinth.ko).  Keep it plain: one `NAME := files` assignment per list,
# continued with backslashes.  docs/design.md ("Map") says what each file
# does.
LB_CORE_SOURCES := region.c buddy.c stack.c supply.c tcache.c level.c \
    remote.c registry.c report.c zone.c grow.c warden.c alloc.c free.c \
    stats.c check.c quality.c track.c api.c
LB_OS_USER_SOURCES := os/os_linux.c os/os_fault.c
LB_OS_KERNEL_SOURCES := os/os_kernel.c os/os_fault.c
