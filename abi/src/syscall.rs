//! Linux x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).

macro_rules! syscalls {
    ($($name:ident $konst:ident = $nr:expr;)*) => {
        $(pub const $konst: usize = $nr;)*

        /// The syscall's name as in Linux's table (`"openat"`), for logs and `--strace`.
        pub fn name(nr: usize) -> Option<&'static str> {
            match nr { $($nr => Some(stringify!($name)),)* _ => None }
        }
    };
}

syscalls! {
    read SYS_READ = 0; write SYS_WRITE = 1; open SYS_OPEN = 2; close SYS_CLOSE = 3;
    stat SYS_STAT = 4; fstat SYS_FSTAT = 5; lstat SYS_LSTAT = 6; poll SYS_POLL = 7;
    lseek SYS_LSEEK = 8; mmap SYS_MMAP = 9; mprotect SYS_MPROTECT = 10; munmap SYS_MUNMAP = 11;
    brk SYS_BRK = 12; rt_sigaction SYS_RT_SIGACTION = 13; rt_sigprocmask SYS_RT_SIGPROCMASK = 14;
    rt_sigreturn SYS_RT_SIGRETURN = 15; ioctl SYS_IOCTL = 16; pread64 SYS_PREAD64 = 17;
    pwrite64 SYS_PWRITE64 = 18; readv SYS_READV = 19; writev SYS_WRITEV = 20;
    access SYS_ACCESS = 21; pipe SYS_PIPE = 22; select SYS_SELECT = 23;
    sched_yield SYS_SCHED_YIELD = 24; mremap SYS_MREMAP = 25; msync SYS_MSYNC = 26;
    mincore SYS_MINCORE = 27; madvise SYS_MADVISE = 28; dup SYS_DUP = 32; dup2 SYS_DUP2 = 33;
    pause SYS_PAUSE = 34; nanosleep SYS_NANOSLEEP = 35; getitimer SYS_GETITIMER = 36;
    alarm SYS_ALARM = 37; setitimer SYS_SETITIMER = 38; getpid SYS_GETPID = 39;
    sendfile SYS_SENDFILE = 40; socket SYS_SOCKET = 41; connect SYS_CONNECT = 42;
    clone SYS_CLONE = 56; fork SYS_FORK = 57; vfork SYS_VFORK = 58; execve SYS_EXECVE = 59;
    exit SYS_EXIT = 60; wait4 SYS_WAIT4 = 61; kill SYS_KILL = 62; uname SYS_UNAME = 63;
    fcntl SYS_FCNTL = 72; flock SYS_FLOCK = 73; fsync SYS_FSYNC = 74; fdatasync SYS_FDATASYNC = 75;
    truncate SYS_TRUNCATE = 76; ftruncate SYS_FTRUNCATE = 77; getdents SYS_GETDENTS = 78;
    getcwd SYS_GETCWD = 79; chdir SYS_CHDIR = 80; fchdir SYS_FCHDIR = 81; rename SYS_RENAME = 82;
    mkdir SYS_MKDIR = 83; rmdir SYS_RMDIR = 84; creat SYS_CREAT = 85; link SYS_LINK = 86;
    unlink SYS_UNLINK = 87; symlink SYS_SYMLINK = 88; readlink SYS_READLINK = 89;
    chmod SYS_CHMOD = 90; fchmod SYS_FCHMOD = 91; chown SYS_CHOWN = 92; fchown SYS_FCHOWN = 93;
    lchown SYS_LCHOWN = 94; umask SYS_UMASK = 95; gettimeofday SYS_GETTIMEOFDAY = 96;
    getrlimit SYS_GETRLIMIT = 97; getrusage SYS_GETRUSAGE = 98; sysinfo SYS_SYSINFO = 99;
    times SYS_TIMES = 100; getuid SYS_GETUID = 102; getgid SYS_GETGID = 104;
    setuid SYS_SETUID = 105; setgid SYS_SETGID = 106; geteuid SYS_GETEUID = 107;
    getegid SYS_GETEGID = 108; setpgid SYS_SETPGID = 109; getppid SYS_GETPPID = 110;
    getpgrp SYS_GETPGRP = 111; setsid SYS_SETSID = 112; setreuid SYS_SETREUID = 113;
    setregid SYS_SETREGID = 114; getgroups SYS_GETGROUPS = 115; setgroups SYS_SETGROUPS = 116;
    setresuid SYS_SETRESUID = 117; getresuid SYS_GETRESUID = 118; setresgid SYS_SETRESGID = 119;
    getresgid SYS_GETRESGID = 120; setfsuid SYS_SETFSUID = 122; setfsgid SYS_SETFSGID = 123; getpgid SYS_GETPGID = 121; getsid SYS_GETSID = 124;
    rt_sigpending SYS_RT_SIGPENDING = 127; rt_sigtimedwait SYS_RT_SIGTIMEDWAIT = 128;
    rt_sigqueueinfo SYS_RT_SIGQUEUEINFO = 129; rt_sigsuspend SYS_RT_SIGSUSPEND = 130;
    sigaltstack SYS_SIGALTSTACK = 131; personality SYS_PERSONALITY = 135; statfs SYS_STATFS = 137;
    fstatfs SYS_FSTATFS = 138; getpriority SYS_GETPRIORITY = 140; setpriority SYS_SETPRIORITY = 141;
    sched_setparam SYS_SCHED_SETPARAM = 142; sched_getparam SYS_SCHED_GETPARAM = 143;
    sched_setscheduler SYS_SCHED_SETSCHEDULER = 144;
    sched_getscheduler SYS_SCHED_GETSCHEDULER = 145;
    sched_get_priority_max SYS_SCHED_GET_PRIORITY_MAX = 146;
    sched_get_priority_min SYS_SCHED_GET_PRIORITY_MIN = 147;
    sched_rr_get_interval SYS_SCHED_RR_GET_INTERVAL = 148; mlock SYS_MLOCK = 149;
    munlock SYS_MUNLOCK = 150; mlockall SYS_MLOCKALL = 151;
    munlockall SYS_MUNLOCKALL = 152; prctl SYS_PRCTL = 157; arch_prctl SYS_ARCH_PRCTL = 158;
    setrlimit SYS_SETRLIMIT = 160; chroot SYS_CHROOT = 161; sync SYS_SYNC = 162;
    mount SYS_MOUNT = 165; reboot SYS_REBOOT = 169; sethostname SYS_SETHOSTNAME = 170;
    gettid SYS_GETTID = 186; tkill SYS_TKILL = 200; time SYS_TIME = 201; futex SYS_FUTEX = 202;
    sched_setaffinity SYS_SCHED_SETAFFINITY = 203; sched_getaffinity SYS_SCHED_GETAFFINITY = 204;
    set_thread_area SYS_SET_THREAD_AREA = 205; get_thread_area SYS_GET_THREAD_AREA = 211;
    epoll_create SYS_EPOLL_CREATE = 213; getdents64 SYS_GETDENTS64 = 217;
    set_tid_address SYS_SET_TID_ADDRESS = 218; restart_syscall SYS_RESTART_SYSCALL = 219;
    fadvise64 SYS_FADVISE64 = 221; timer_create SYS_TIMER_CREATE = 222;
    clock_settime SYS_CLOCK_SETTIME = 227; clock_gettime SYS_CLOCK_GETTIME = 228;
    clock_getres SYS_CLOCK_GETRES = 229; clock_nanosleep SYS_CLOCK_NANOSLEEP = 230;
    exit_group SYS_EXIT_GROUP = 231; epoll_wait SYS_EPOLL_WAIT = 232; epoll_ctl SYS_EPOLL_CTL = 233;
    tgkill SYS_TGKILL = 234; utimes SYS_UTIMES = 235; waitid SYS_WAITID = 247;
    openat SYS_OPENAT = 257; mkdirat SYS_MKDIRAT = 258; mknodat SYS_MKNODAT = 259;
    fchownat SYS_FCHOWNAT = 260; newfstatat SYS_NEWFSTATAT = 262; unlinkat SYS_UNLINKAT = 263;
    renameat SYS_RENAMEAT = 264; linkat SYS_LINKAT = 265; symlinkat SYS_SYMLINKAT = 266;
    readlinkat SYS_READLINKAT = 267; fchmodat SYS_FCHMODAT = 268; faccessat SYS_FACCESSAT = 269;
    pselect6 SYS_PSELECT6 = 270; ppoll SYS_PPOLL = 271; set_robust_list SYS_SET_ROBUST_LIST = 273;
    get_robust_list SYS_GET_ROBUST_LIST = 274; utimensat SYS_UTIMENSAT = 280;
    epoll_pwait SYS_EPOLL_PWAIT = 281; eventfd SYS_EVENTFD = 284; fallocate SYS_FALLOCATE = 285;
    eventfd2 SYS_EVENTFD2 = 290; epoll_create1 SYS_EPOLL_CREATE1 = 291; dup3 SYS_DUP3 = 292;
    pipe2 SYS_PIPE2 = 293; preadv SYS_PREADV = 295; pwritev SYS_PWRITEV = 296;
    prlimit64 SYS_PRLIMIT64 = 302; getcpu SYS_GETCPU = 309; renameat2 SYS_RENAMEAT2 = 316;
    getrandom SYS_GETRANDOM = 318; memfd_create SYS_MEMFD_CREATE = 319; execveat SYS_EXECVEAT = 322;
    membarrier SYS_MEMBARRIER = 324; mlock2 SYS_MLOCK2 = 325;
    copy_file_range SYS_COPY_FILE_RANGE = 326;
    preadv2 SYS_PREADV2 = 327; pwritev2 SYS_PWRITEV2 = 328; statx SYS_STATX = 332;
    rseq SYS_RSEQ = 334; pidfd_send_signal SYS_PIDFD_SEND_SIGNAL = 424;
    pidfd_open SYS_PIDFD_OPEN = 434; clone3 SYS_CLONE3 = 435;
    close_range SYS_CLOSE_RANGE = 436; openat2 SYS_OPENAT2 = 437; faccessat2 SYS_FACCESSAT2 = 439;
    futex_waitv SYS_FUTEX_WAITV = 449; fchmodat2 SYS_FCHMODAT2 = 452; mseal SYS_MSEAL = 462;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table() {
        assert_eq!(name(SYS_OPENAT), Some("openat"));
        assert_eq!(name(SYS_RT_SIGACTION), Some("rt_sigaction"));
        assert_eq!(name(SYS_PREAD64), Some("pread64"));
        assert_eq!(name(SYS_RSEQ), Some("rseq"));
        assert_eq!(name(SYS_CLONE3), Some("clone3"));
        assert_eq!(name(400), None);
    }
}
