/* seccomp_exec.c: hl-seccomp-exec PROGRAM ARGS... runs PROGRAM the way
 * ops/systemd/helplined.service confines it, approximately, for
 * notify.test.mjs on machines without a running systemd: NoNewPrivileges,
 * MemoryDenyWriteExecute (mmap with PROT_WRITE|PROT_EXEC and mprotect
 * with PROT_EXEC fail with EPERM) and RestrictAddressFamilies=AF_UNIX
 * AF_INET AF_INET6 (here: socket(AF_NETLINK) fails with EAFNOSUPPORT, the
 * one other family the daemon tries). Exits 77 where it cannot. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#define ARG(n) offsetof(struct seccomp_data, args[n])
int main(int argc, char **argv)
{
#if !defined(__NR_mmap) || !defined(__NR_mprotect)
	(void)argc;
	(void)argv;
	fprintf(stderr, "hl-seccomp-exec: not supported on this architecture\n");
	return 77;
#else
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 2),
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(0)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 10, 11),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
		/* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(2)),
		/* 6 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
		/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 5, 7),
		/* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 6),
		/* 9 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(2)),
		/* 10 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_EXEC),
		/* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_EXEC, 1, 3),
		/* 12 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* 13 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		/* 14 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
		/* 15 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	if (argc < 2) {
		fprintf(stderr, "usage: hl-seccomp-exec PROGRAM [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("hl-seccomp-exec: seccomp");
		return 77;
	}
	execv(argv[1], argv + 1);
	perror("hl-seccomp-exec: exec");
	return 127;
#endif
}
