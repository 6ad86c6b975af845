#!/usr/bin/env python3
"""seccomp_deny.py NR[,NR...] CMD ARGS...: run CMD under a seccomp filter that
kills the process (SIGSYS) on the given system call numbers, as a filter
written before those calls existed may (systemd's SystemCallFilter= of an
older systemd).  x86_64 only."""
import ctypes, os, struct, sys

nrs = [int(n) for n in sys.argv[1].split(",")]
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
ALLOW, KILL_PROCESS = 0x7FFF0000, 0x80000000
prog = [(BPF_LD_W_ABS, 0, 0, 0)]  # the call's number
for i, nr in enumerate(nrs):  # to the kill at the end
    prog.append((BPF_JEQ_K, len(nrs) - i, 0, nr))
prog += [(BPF_RET_K, 0, 0, ALLOW), (BPF_RET_K, 0, 0, KILL_PROCESS)]
code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
buf = ctypes.create_string_buffer(code, len(code))


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


fprog = SockFprog(len(prog), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0):
    sys.exit("seccomp_deny.py: cannot install the filter: " + os.strerror(ctypes.get_errno()))
os.execvp(sys.argv[2], sys.argv[2:])
