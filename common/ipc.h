/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The daemon <-> runner channel: a SOCK_SEQPACKET socketpair, so the kernel
 * keeps message boundaries. Every message is an IpcHeader and a payload of
 * exactly header.len bytes, at most IPC_MSG_MAX in all. The receiver checks
 * type and length before it looks at the payload; the daemon treats a bad
 * message from a runner as fatal for that runner (it runs user code). */

#define IPC_MSG_MAX (256u * 1024u)
#define IPC_COMMIT_RANGES_MAX 8192u

enum {
        /* daemon -> runner */
        IPC_START = 1,   /* payload: job description, JSON text */
        IPC_STOP = 2,    /* payload: IpcStop */
        IPC_PLACED = 3,  /* payload: none; in the job's scope now: start the workers */
        /* runner -> daemon */
        IPC_READY = 16,  /* payload: none; lock held, module loaded, output open */
        IPC_COMMIT = 17, /* payload: IpcCommit + ranges */
        IPC_DONE = 18,   /* payload: none; every item is committed */
        IPC_FAIL = 19,   /* payload: IpcFail + message text; the job cannot go on */
        IPC_PROGRESS = 20, /* payload: IpcProgress; informational */
        IPC_SHARDS = 21,   /* payload: IpcShards + IpcShard[n]; a Slurm job's shards, informational */
        IPC_STATS = 22,    /* payload: IpcStats + IpcStatsWorker[n]; where the run's time went, informational */
        IPC_REUSED = 23,   /* payload: IpcReused; results taken from the --reuse job, committed */
};

/* mplockd <-> an agent (runner/agent.c): a user's warm helper that forks
 * the user's checks and runners instead of mplockd exec'ing each. */
enum {
        IPC_AGENT_SPAWN = 64,   /* daemon -> agent: AgentSpawn + arguments; descriptors */
        IPC_AGENT_KILL = 65,    /* daemon -> agent: AgentKill */
        IPC_AGENT_SPAWNED = 80, /* agent -> daemon: AgentSpawned */
        IPC_AGENT_EXITED = 81,  /* agent -> daemon: AgentExited */
};

enum {
        AGENT_MODE_CHECK = 1, /* "mplock-runner check" */
        AGENT_MODE_RUN = 2,   /* "mplock-runner run" */
        AGENT_MODE_RESULTS = 3, /* "mplock-runner results" */
        AGENT_MODE_ON_END = 4,  /* "mplock-runner on-end": a job's on-end command */
};

#define AGENT_ARGS_MAX 32

typedef struct AgentSpawn {
        uint64_t tag; /* the daemon's name for the task */
        uint32_t mode;
        uint32_t n_args; /* NUL-terminated strings follow */
} AgentSpawn;

typedef struct AgentKill {
        uint64_t tag;
        uint32_t signal; /* to the task's whole process group */
        uint32_t reserved;
} AgentKill;

typedef struct AgentSpawned {
        uint64_t tag;
        int32_t pid;   /* 0: answered without a process (its EXITED follows) */
        int32_t error; /* -errno when it could not be started */
} AgentSpawned;

typedef struct AgentExited {
        uint64_t tag;
        int32_t code;   /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
        int32_t status; /* exit status or signal */
} AgentExited;

typedef struct IpcHeader {
        uint32_t type;
        uint32_t len; /* payload bytes */
} IpcHeader;

enum {
        IPC_STOP_GRACEFUL = 1, /* finish in-flight items, commit, exit 0 */
        IPC_STOP_CANCEL = 2,   /* kill workers now, exit */
};

/* With IPC_STOP_GRACEFUL: the owner paused the job (not mplockd stopping),
 * so a Slurm job also stops its work on the cluster. */
#define IPC_STOP_FLAG_PAUSE 1u

typedef struct IpcStop {
        uint32_t mode;
        uint32_t flags;
} IpcStop;

typedef struct IpcRange {
        uint64_t first;
        uint64_t count;
} IpcRange;

/* "Every item in these ranges has its one record in the results file below
 * results_len, and results_len has been fdatasync'ed." Totals are cumulative
 * over the job so that the daemon can check them against its bitmap. */
typedef struct IpcCommit {
        uint64_t results_len;
        uint64_t done_total;
        uint64_t failed_total;
        uint32_t n_ranges;
        uint32_t reserved;
        /* IpcRange ranges[n_ranges]; */
} IpcCommit;

/* Sent after the commits of the results it counts. */
typedef struct IpcReused {
        uint64_t count;
} IpcReused;

typedef struct IpcProgress {
        uint64_t processed; /* items with results, committed or not */
        uint32_t workers;   /* live workers */
        uint32_t reserved;
} IpcProgress;

/* A Slurm job's shards as its coordinator sees them (runner/slurm.c). */
#define IPC_SHARDS_MAX 1024u
#define IPC_SLURM_ID_MAX 32u   /* "1234567_89" */
#define IPC_SLURM_NODE_MAX 64u /* a node's name, or a node list */

enum {
        IPC_SHARD_PENDING = 0,
        IPC_SHARD_RUNNING = 1,
        IPC_SHARD_DONE = 2,
        IPC_SHARD_LOST = 3,   /* its task ended before the shard did: resubmitted */
        IPC_SHARD_FAILED = 4, /* lost too often: the job fails */
        IPC_SHARD_STOPPED = 5, /* paused, or cancelled */
        _IPC_SHARD_STATE_MAX,
};

typedef struct IpcShards {
        uint32_t n; /* IpcShard entries that follow, at most IPC_SHARDS_MAX */
        uint32_t reserved;
        char array[IPC_SLURM_ID_MAX]; /* the array's Slurm job id, NUL-terminated */
} IpcShards;

typedef struct IpcShard {
        uint64_t items, done, failed; /* the shard's, as its checkpoint says */
        uint32_t state;               /* IPC_SHARD_* */
        uint32_t attempts;            /* its tasks so far */
        char job[IPC_SLURM_ID_MAX];   /* its task now ("1234_5"), NUL-terminated */
        char node[IPC_SLURM_NODE_MAX]; /* where it runs or ran, NUL-terminated */
} IpcShard;

_Static_assert(sizeof(IpcShards) + IPC_SHARDS_MAX * sizeof(IpcShard) <= IPC_MSG_MAX - 8, "shards fit a message");

/* Where a run's time went (common/stats.h), as its runner sends it every
 * few seconds and before DONE; mplockd keeps the last one with the job
 * (jobs/<id>/stats, this same layout) and checks it as it checks any
 * runner message: stats_msg_check(). Times in microseconds. */
#define IPC_STATS_MAGIC 0x5354504du /* "MPTS" */
#define IPC_STATS_SLOTS 10u         /* STATS_SLOW_MAX */
#define IPC_STATS_BUCKETS 120u      /* STATS_BUCKETS_MAX */
#define IPC_STATS_TEXT_MAX 64u      /* an item's first bytes, NUL-terminated */
#define IPC_STATS_WORKERS_MAX 1024u

typedef struct IpcStatsSlow {
        uint64_t index;
        uint64_t usec; /* its call of process (its share of it, in a batch) */
        uint64_t len;  /* the item's bytes: more than strlen(text) when cut */
        char text[IPC_STATS_TEXT_MAX];
} IpcStatsSlow;

typedef struct IpcStatsWorker {
        uint64_t life_usec; /* its processes alive, spawn to exit */
        uint64_t init_usec; /* in init (and its setup) */
        uint64_t busy_usec; /* in its chunks: process and the results */
        uint64_t wait_usec; /* waiting for a chunk that then came */
        uint64_t items;
        uint32_t spawns; /* processes in this slot: replacements after a crash or recycling */
        uint32_t reserved;
} IpcStatsWorker;

typedef struct IpcStats {
        uint32_t magic;
        uint32_t n_workers; /* IpcStatsWorker entries that follow, one per worker slot */
        uint32_t n_buckets; /* of buckets in use */
        uint32_t n_slow;    /* of slow in use, slowest first */
        uint64_t started_usec; /* CLOCK_REALTIME at the run's start */
        uint64_t elapsed_usec; /* since then, when this was sent */
        uint64_t items;        /* finished in this run */
        uint64_t save_usec, save_calls; /* in the module's save callback */
        uint64_t bucket_usec;  /* items per bucket of this width since the start */
        uint64_t buckets[IPC_STATS_BUCKETS];
        IpcStatsSlow slow[IPC_STATS_SLOTS];
} IpcStats;

_Static_assert(sizeof(IpcStats) % 8 == 0 && sizeof(IpcStatsWorker) % 8 == 0, "stats stay aligned");
_Static_assert(sizeof(IpcStats) + IPC_STATS_WORKERS_MAX * sizeof(IpcStatsWorker) <= IPC_MSG_MAX - 8,
               "stats fit a message");

enum {
        IPC_FAIL_PERMANENT = 1, /* do not retry: module refused, bad output... */
        IPC_FAIL_TEMPORARY = 2, /* worth a retry later (out of memory, a crash) */
        IPC_FAIL_STORAGE = 3,   /* writing failed (disk full, I/O error): pause until resumed */
};

typedef struct IpcFail {
        uint32_t kind;
        uint32_t reserved;
        /* char message[]; not NUL-terminated */
} IpcFail;

/* Descriptors one message may carry (SCM_RIGHTS). */
#define IPC_FDS_MAX 8

/* Sends one message; blocks unless fd is non-blocking (then -EAGAIN). */
int ipc_send(int fd, uint32_t type, const void *payload, size_t len);
int ipc_send2(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen);
/* The same, with n_fds descriptors (at most IPC_FDS_MAX) passed along. */
int ipc_send_fds(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen, const int *fds,
                 size_t n_fds);
/* Receives one message into buf (IPC_MSG_MAX bytes): 1 with type and payload
 * length, 0 at EOF, -EAGAIN, -EBADMSG for a truncated or malformed message.
 * Descriptors sent along are closed by the kernel: nobody can make the
 * receiver hold one it did not ask for. */
int ipc_recv(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload);
/* The same, taking up to IPC_FDS_MAX descriptors (O_CLOEXEC) into fds and
 * their count into *n_fds; a message with more, or a malformed one, has
 * them all closed and is -EBADMSG. */
/* ipc_recv, with the sender's credentials as the kernel vouches for them
 * (SO_PASSCRED on fd): pid 0 when none came. */
struct ucred;
int ipc_recv_cred(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload,
                  struct ucred *cred);
int ipc_recv_fds(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload, int *fds,
                 size_t *n_fds);
