/* SPDX-License-Identifier: MIT */
#include "nosignal.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "macro.h"

#if defined(__x86_64__)
#define NOSIGNAL_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NOSIGNAL_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define NOSIGNAL_ARCH AUDIT_ARCH_I386
#else
#error "nosignal: add this architecture's AUDIT_ARCH"
#endif

#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#define DENY (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

int nosignal_install(pid_t runner, pid_t group) {
        /* Each syscall that names a process first: compare that argument
         * (its low 32 bits: a pid_t) with the protected targets. */
        const uint32_t r = (uint32_t) runner, g = (uint32_t) -group, all = (uint32_t) -1;
        struct sock_filter prog[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NOSIGNAL_ARCH, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
                /* The x32 numbers of the same calls: not for a worker. */
                BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, DENY),
#endif
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kill, 6, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tkill, 5, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 4, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigqueueinfo, 3, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_tgsigqueueinfo, 2, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
                /* The target. */
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, r, 4, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, g, 2, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, all, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
                BPF_STMT(BPF_RET | BPF_K, DENY),
        };
        struct sock_fprog fprog = { .len = (unsigned short) ELEMENTSOF(prog), .filter = prog };

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
                return -errno;
        return 0;
}
