"""lakerun's prelude for py_exec transforms: confines this interpreter with Landlock, then runs py_exec.main.

lakerun (executors/staging/py_exec.ts) runs `python3 -c <this file> <spec>`, where <spec> is JSON:

    {"mode": "best_effort" | "required" | "off", "probe": false, "lifeline": true,
     "folder": py_exec_path, "parent": input folder, "dump": output folder, "args": py_exec_args,
     "read": [folders the transform may read], "write": [folders it may read and write]}

Before anything else is imported, the current folder leaves sys.path. Then, unless the mode is "off", the
process restricts itself and every process it starts (Landlock, Linux 5.13 or later; no_new_privs):

- read: the Python installation (sys.prefix, sys.base_prefix, the exec prefixes, the sys.path entries), the
  system's shared libraries and time zone and locale data, a few devices (/dev/null, /dev/urandom...), and
  spec["read"] (py_exec_path and the input folder);
- read and write: spec["write"] (the output folder, the private TMPDIR and HOME);
- execute: the interpreter (and its ELF loader) only;
- network (Landlock ABI 4, Linux 6.7): no TCP bind or connect;
- scopes (ABI 6, Linux 6.12): no signal to, and no abstract UNIX socket of, a process outside the sandbox.

Only then is py_exec imported and main(parent, dump, **args) called. Where the kernel cannot confine, "required"
stops here (exit 3) and "best_effort" runs unconfined and says so. The prelude talks to lakerun through
standard error, one line each, "lakerun-prelude: " followed by JSON: first what applied ({"confined": ...} or
{"unconfined": reason}); then, when the transform failed on a refused access, {"refused": ...}, naming it.
With "probe": true it only reports what this machine offers ({"probe": ...}) and exits: `lakerun plan`.
"""

import sys

# `-c` puts the current folder first on sys.path: nothing may be imported from it, not even by this prelude
if sys.path and sys.path[0] == "":
    del sys.path[0]

import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

MARK = "lakerun-prelude: "

# generic syscall numbers, the same on every architecture lakerun knows (alpha adds 110; mips is unsupported)
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS = 38
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1  # no RULE_NET_PORT rule is ever added: no port is allowed

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # all a rule on a non-folder may grant
READ = READ_FILE | READ_DIR
WRITE = READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM
WRITE |= REFER | TRUNCATE

# public system files a transform's libraries may need: shared libraries, time zones, locales, MIME types
SYSTEM_READ = [
    "/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/local/lib",
    "/usr/local/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/usr/share/zoneinfo",
    "/usr/share/locale", "/usr/share/i18n", "/etc/mime.types", "/dev/urandom", "/dev/random", "/dev/zero",
]
DEVICES_READ_WRITE = ["/dev/null"]


class Unconfinable(Exception):
    """This machine cannot confine the transform; the message says why."""


def report(**fields):
    sys.stderr.write(MARK + json.dumps(fields) + "\n")
    sys.stderr.flush()


def landlock():
    """ctypes, libc, a `syscall(number, *args)` raising OSError, and this kernel's Landlock ABI version.

    Raises Unconfinable where there is no Landlock to use."""
    if not sys.platform.startswith("linux"):
        raise Unconfinable(f"Landlock is Linux only (this is {sys.platform})")
    machine = os.uname().machine
    offset = 110 if machine.startswith("alpha") else 0
    if machine.startswith("mips"):
        raise Unconfinable(f"lakerun's prelude does not know the Landlock syscall numbers of {machine}")
    try:
        import ctypes
    except ImportError as error:
        raise Unconfinable(f"this Python has no ctypes ({error})") from None
    if machine == "x86_64" and ctypes.sizeof(ctypes.c_void_p) == 4:
        raise Unconfinable("lakerun's prelude does not support the x32 ABI")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def syscall(number, *args):
        result = libc.syscall(ctypes.c_long(number + offset), *args)
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    try:
        abi = syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError as error:
        import errno

        reason = {
            errno.ENOSYS: "this kernel has no Landlock (it needs Linux 5.13 or later built with Landlock)",
            errno.EOPNOTSUPP: "Landlock is built into this kernel but not enabled (see the lsm= boot parameter)",
            errno.EPERM: "landlock_create_ruleset was refused (EPERM), e.g. by a container's seccomp profile",
        }.get(error.errno, f"landlock_create_ruleset failed: {error.strerror}")
        raise Unconfinable(reason) from None
    return ctypes, libc, syscall, abi


def interpreter_paths():
    """The Python installation's folders: prefixes and sys.path entries (the current folder never)."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [p for p in sys.path if p and os.path.isabs(p)]
    return unique(paths)


def executables():
    """The interpreter, resolved, and its ELF loader (execve opens both): the only programs the sandbox runs."""
    interpreter = os.path.realpath(sys.executable)
    found = [interpreter]
    try:
        with open(interpreter, "rb") as elf:
            header = elf.read(64)
            if header[:4] == b"\x7fELF" and header[4] == 2 and header[5] == 1:  # 64-bit little-endian
                phoff = int.from_bytes(header[32:40], "little")
                phentsize = int.from_bytes(header[54:56], "little")
                phnum = int.from_bytes(header[56:58], "little")
                elf.seek(phoff)
                table = elf.read(phentsize * phnum)
                for i in range(phnum):
                    entry = table[i * phentsize:(i + 1) * phentsize]
                    if int.from_bytes(entry[0:4], "little") == 3:  # PT_INTERP
                        offset = int.from_bytes(entry[8:16], "little")
                        size = int.from_bytes(entry[32:40], "little")
                        elf.seek(offset)
                        found.append(os.path.realpath(elf.read(size).rstrip(b"\0").decode()))
    except OSError:
        pass
    return found


def unique(paths):
    seen = []
    for path in paths:
        if path and path not in seen:
            seen.append(path)
    return seen


def confine(spec):
    """Restricts this process and its future children; returns what applied. Raises Unconfinable."""
    ctypes, libc, syscall, abi = landlock()
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = 1  # no /proc to ask; Python itself starts no thread before running this prelude
    if threads != 1:
        raise Unconfinable("the interpreter already runs other threads, which Landlock would not confine")
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= REFER
    if abi >= 3:
        handled |= TRUNCATE
    if abi >= 5:
        handled |= IOCTL_DEV
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    attr = RulesetAttr(handled, handled_net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    granted = {"read": [], "system": [], "write": [], "run": []}
    try:
        def allow(path, access, kind):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return  # absent (a sys.path entry such as python311.zip): nothing to grant
            try:
                rights = access & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= FILE_RIGHTS
                rule = PathBeneath(rights, fd)
                syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0))
                granted[kind].append(path)
            finally:
                os.close(fd)

        python = interpreter_paths()
        for path in python + spec["read"]:
            allow(path, READ, "read")
        for path in SYSTEM_READ:
            allow(path, READ, "system")
        for path in DEVICES_READ_WRITE:
            allow(path, READ_FILE | WRITE_FILE, "system")
        for path in spec["write"]:
            allow(path, WRITE, "write")
        for path in executables():
            allow(path, EXECUTE | READ_FILE, "run")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise Unconfinable(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return {
        "abi": abi,
        "python": [p for p in python if p in granted["read"]],
        "read": [p for p in spec["read"] if p in granted["read"]],
        "write": granted["write"],
        "run": granted["run"][:1],
        "network": abi >= 4,
        "scoped": abi >= 6,
    }


# ---- naming what was refused ---------------------------------------------------------------------------------

WRITE_EVENTS = {"os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.link", "os.symlink", "os.truncate",
                "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.move", "shutil.rmtree"}
RUN_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"}
NET_EVENTS = {"socket.connect", "socket.bind"}
TRACKED = WRITE_EVENTS | RUN_EVENTS | NET_EVENTS | {"open", "os.listdir", "os.scandir"}
last_event = [None]


def remember(event, args):
    """Audit hook: keeps the last file, process or socket operation, to name what a PermissionError refused."""
    if event in TRACKED:
        last_event[0] = (event, args)


def refused(error, confined):
    """What a PermissionError refused, as lakerun names it: {"access", "target", "sandbox"}."""
    event, args = last_event[0] or (None, ())
    if event in NET_EVENTS and error.filename is None:
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            target = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        else:
            target = str(address)
        return {"access": "net", "target": target, "sandbox": confined}
    if error.filename is None:
        return {"access": None, "target": None, "sandbox": False}
    target = os.fsdecode(error.filename) if isinstance(error.filename, bytes) else str(error.filename)
    access = "read"
    if event in RUN_EVENTS:
        access = "run"
    elif event in WRITE_EVENTS:
        access = "write"
    elif event == "open":
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & writes):
            access = "write"
    # Landlock leaves access(2) alone: what the file system itself allows but failed was the sandbox's refusal
    mode = {"read": os.R_OK, "write": os.W_OK, "run": os.X_OK}[access]
    absolute = os.path.abspath(target)
    exists = os.path.exists(absolute)
    allowed = os.access(absolute, mode) if exists else os.access(os.path.dirname(absolute), os.W_OK | os.X_OK)
    return {"access": access, "target": absolute, "sandbox": confined and allowed}


def run_transform(spec, confined):
    if hasattr(sys, "addaudithook"):
        sys.addaudithook(remember)
    sys.argv = ["-c", spec["folder"], spec["parent"], spec["dump"], json.dumps(spec["args"])]
    sys.path.insert(0, spec["folder"])
    try:
        import py_exec

        py_exec.main(spec["parent"], spec["dump"], **spec["args"])
    except PermissionError as error:
        what = refused(error, confined)  # first: printing the traceback opens files too
        import traceback

        traceback.print_exc()
        report(refused=what, error=f"{type(error).__name__}: {error}")
        sys.exit(1)


def watch_lakerun():
    """Ends this process when lakerun is gone, even killed with SIGKILL: lakerun holds the write end of this
    process's standard input open and never writes to it, so end of file there means it exited. The transform
    gets /dev/null as its standard input, as before."""
    import threading

    lifeline = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def wait():
        try:
            while os.read(lifeline, 1):
                pass
        except OSError:
            pass
        os._exit(143)

    threading.Thread(target=wait, name="lakerun-lifeline", daemon=True).start()


def main():
    spec = json.loads(sys.argv[1])
    if spec.get("probe"):
        try:
            abi, reason = landlock()[3], None
        except Unconfinable as error:
            abi, reason = None, str(error)
        report(probe={"abi": abi, "reason": reason, "python": interpreter_paths(), "run": executables()[:1]})
        return
    confined = False
    if spec["mode"] == "off":
        report(unconfined="py_exec_sandbox is off")
    else:
        try:
            try:
                applied = confine(spec)
            except OSError as error:  # a rule or the restriction itself refused: nothing was restricted
                raise Unconfinable(f"Landlock refused the ruleset: {error}") from None
            report(confined=applied)
            confined = True
        except Unconfinable as error:
            if spec["mode"] == "required":
                report(unconfinable=str(error))
                sys.exit(3)
            report(unconfined=str(error))
    if spec.get("lifeline"):
        watch_lakerun()  # a thread: started once confined (Landlock confines the calling thread only)
    run_transform(spec, confined)


main()
