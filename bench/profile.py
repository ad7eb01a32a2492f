#!/usr/bin/env python3
"""Instruction-by-instruction profile of one operation of the benchmark guest program.

Boots the guest program (target/bench/bin/ktls-bench-guest, built by `ktls-bench`) on ktls or
on Linux in QEMU TCG with a gdb stub, lets it run to the global label prof_begin_OP, then
single-steps (QEMU masks interrupts while stepping) until prof_end_OP and prints every
instruction with its function, and the count per function. Kernel addresses are named from the
ktls kernel ELF, or for Linux from /proc/kallsyms, which the guest prints after the operation
(Linux is booted with nokaslr; Debian's System.map is a placeholder).

    bench/profile.py sys-110                  # the getppid round trip on ktls
    bench/profile.py --linux sys-110          # the same on Linux
    bench/profile.py pingpong                 # one futex ping-pong round (two switches)
    bench/profile.py --kernel-arg nofsgsbase pingpong
    bench/profile.py vdso-gettid | fault | thread

Needs gdb. Run `cargo run -p ktls-bench --release` (or `cargo build --release -p ktls-runner`
and the guest) first; this script builds nothing but the initramfs.
"""

import argparse
import bisect
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST = os.path.join(ROOT, "target/bench/bin/ktls-bench-guest")
KERNEL = os.path.join(ROOT, "target/guest/x86_64-unknown-none/release/ktls-kernel")
RUNNER = os.path.join(ROOT, "target/release/ktls")

STEP_SCRIPT = r"""
import gdb, os
begin = int(os.environ["PROF_BEGIN"], 16)
end = int(os.environ["PROF_END"], 16)
limit = int(os.environ["PROF_MAX"])
out = open(os.environ["PROF_OUT"], "w")
gdb.execute("set pagination off")
gdb.execute("set architecture i386:x86-64")
gdb.execute("target remote localhost:" + os.environ["PROF_PORT"])
gdb.execute("hbreak *0x%x" % begin)
gdb.execute("continue")
n = 0
while n < limit:
    pc = int(gdb.parse_and_eval("$pc")) & 0xffffffffffffffff
    if pc == end:
        break
    out.write("%x\n" % pc)
    n += 1
    gdb.execute("stepi", to_string=True)
out.close()
if os.environ.get("PROF_CONTINUE"):
    # Let the guest finish (on Linux it prints /proc/kallsyms after the operation).
    gdb.execute("delete")
    gdb.execute("continue")
else:
    gdb.execute("kill")
"""


def symbols(path):
    """(address, name) of the text symbols of an ELF (nm) or a System.map."""
    if "System.map" in path:
        text = open(path).read()
    else:
        text = subprocess.run(["nm", "-n", "-C", path], capture_output=True, text=True).stdout
    out = []
    for line in text.splitlines():
        m = re.match(r"([0-9a-f]+) [tTwW] (.*)", line)
        if m:
            out.append((int(m.group(1), 16), re.sub(r"::h[0-9a-f]{16}$", "", m.group(2))))
    return out


def disassembly(path):
    """address -> instruction text, from objdump."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True).stdout
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if m:
            out[int(m.group(1), 16)] = m.group(2).strip()
    return out


def cpio(files):
    """A newc archive of regular files {name: bytes}."""
    out = b""
    ino = 1
    for name, data in list(files.items()) + [("TRAILER!!!", b"")]:
        mode = 0o100755 if data or name != "TRAILER!!!" else 0
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
        out += hdr + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("op", help="sys-NR, vdso-gettid, fault, pingpong or thread")
    ap.add_argument("--linux", action="store_true", help="profile on Linux instead of ktls")
    ap.add_argument("--linux-kernel", help="bzImage (default: newest /boot/vmlinuz-*-cloud-amd64)")
    ap.add_argument("--kernel-arg", action="append", default=[], help="ktls kernel argument")
    ap.add_argument("--max", type=int, default=200000, help="stop after this many instructions")
    ap.add_argument("--quiet", action="store_true", help="only the per-function counts")
    a = ap.parse_args()

    label = a.op.split("-")[0] if a.op.startswith("sys-") else a.op.replace("-gettid", "")
    label = {"sys": "syscall"}.get(label, label)
    guest_syms = dict((n, addr) for addr, n in symbols(GUEST))
    begin, end = guest_syms["prof_begin_" + label], guest_syms["prof_end_" + label]
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="ktls-profile-")
    trace = os.path.join(tmp, "trace")

    if a.linux:
        kernel = a.linux_kernel or sorted(
            (os.path.join("/boot", f) for f in os.listdir("/boot")
             if f.startswith("vmlinuz-") and f.endswith("-cloud-amd64")))[-1]
        kdis = {}
        initrd = os.path.join(tmp, "initrd.cpio")
        open(initrd, "wb").write(cpio({"init": open(GUEST, "rb").read()}))
        cmd = ["qemu-system-x86_64", "-M", "microvm,rtc=on", "-accel", "tcg", "-cpu", "max",
               "-m", "256M", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot",
               "-serial", "file:" + os.path.join(tmp, "console"),
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
               "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyS0 quiet nokaslr panic=-1 reboot=t -- linux profile-" + a.op,
               "-gdb", "tcp::%d" % port, "-S"]
        qemu = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        ksyms = symbols(KERNEL)
        kdis = disassembly(KERNEL)
        wrapper = os.path.join(tmp, "qemu")
        open(wrapper, "w").write('#!/bin/sh\nexec qemu-system-x86_64 "$@" -gdb tcp::%d -S\n' % port)
        os.chmod(wrapper, 0o755)
        cmd = [RUNNER, "run", "--accel", "tcg", "--timeout", "600"]
        for k in a.kernel_arg:
            cmd += ["--kernel-arg", k]
        cmd += [GUEST, "ktls", "profile-" + a.op]
        env = dict(os.environ, KTLS_QEMU=wrapper)
        qemu = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    env = dict(os.environ, PROF_BEGIN="%x" % begin, PROF_END="%x" % end, PROF_OUT=trace,
               PROF_PORT=str(port), PROF_MAX=str(a.max))
    if a.linux:
        env["PROF_CONTINUE"] = "1"
    script = os.path.join(tmp, "step.py")
    open(script, "w").write(STEP_SCRIPT)
    g = subprocess.run(["gdb", "-batch", "-x", script], env=env, capture_output=True, text=True)
    if not os.path.exists(trace) or os.path.getsize(trace) == 0:
        sys.exit("profile.py: gdb did not trace:\n" + g.stdout + g.stderr)
    try:
        qemu.wait(timeout=600 if a.linux else 30)
    except subprocess.TimeoutExpired:
        qemu.kill()
    if a.linux:
        # Debian's System.map is a placeholder: the guest printed /proc/kallsyms instead.
        console = open(os.path.join(tmp, "console"), errors="replace").read()
        dump = console.split("@kb kallsyms begin", 1)[-1].split("@kb kallsyms end", 1)[0]
        ksyms = []
        for line in dump.splitlines():
            m = re.match(r"([0-9a-f]{16}) [tTwW] (\S+)", line.strip())
            if m:
                ksyms.append((int(m.group(1), 16), m.group(2)))

    syms = sorted(ksyms + [(addr, n) for n, addr in guest_syms.items()])
    addrs = [s[0] for s in syms]
    gdis = disassembly(GUEST)
    pcs = [int(l, 16) for l in open(trace) if l.strip()]

    guest_end = max(guest_syms.values()) + 0x100000

    def name(pc):
        if guest_end < pc < 0x800000000000:
            return "[vDSO]"
        i = bisect.bisect_right(addrs, pc) - 1
        return syms[i][1] if i >= 0 else "?"

    totals = {}
    for pc in pcs:
        n = name(pc)
        totals[n] = totals.get(n, 0) + 1
        if not a.quiet:
            print("%16x  %-50.50s %s" % (pc, n, kdis.get(pc) or gdis.get(pc) or ""))
    print("%d instructions from prof_begin_%s to prof_end_%s (%s)"
          % (len(pcs), label, label, "Linux" if a.linux else "ktls"))
    for n, c in sorted(totals.items(), key=lambda x: -x[1]):
        print("%7d  %s" % (c, n[:120]))


if __name__ == "__main__":
    main()
