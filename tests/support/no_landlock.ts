/**
 * A kernel without Landlock, simulated for tests: {@link withoutLandlock} wraps a command so that it runs
 * under a seccomp filter making the three Landlock system calls fail with `ENOSYS`, exactly what a kernel
 * built without Landlock answers. The filter is inherited by every process the command starts (lakerun, the
 * step's `python3`, the prelude), and it cannot be lifted, so lakerun itself has no switch for this: nothing a
 * user sets can make lakerun believe the kernel lacks Landlock while it has it.
 *
 * The wrapper is a few lines of Python (ctypes: `prctl(PR_SET_NO_NEW_PRIVS)`, then
 * `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, …)`, then `execv`), for x86_64 and aarch64, whose Landlock
 * calls are numbers 444 to 446.
 *
 * @module
 */

const WRAPPER = String.raw`
import ctypes, os, platform, struct, sys
ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]
ENOSYS = 38
def op(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
program = b"".join([
    op(0x20, 0, 0, 4),                      # load seccomp_data.arch
    op(0x15, 0, 4, ARCH),                   # another architecture: allow
    op(0x20, 0, 0, 0),                      # load seccomp_data.nr
    op(0x35, 0, 2, 444),                    # nr < 444: allow
    op(0x25, 1, 0, 446),                    # nr > 446: allow
    op(0x06, 0, 0, 0x00050000 | ENOSYS),    # landlock_*: fail with ENOSYS
    op(0x06, 0, 0, 0x7FFF0000),             # allow
])
buffer = ctypes.create_string_buffer(program)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
`;

/**
 * The program and arguments that run `program args…` on a simulated kernel without Landlock.
 *
 * @example
 * ```ts ignore
 * const { program, args } = withoutLandlock(Deno.execPath(), ["run", "-A", "main.ts", "plan", "r.json"]);
 * await new Deno.Command(program, { args }).output();
 * ```
 */
export function withoutLandlock(program: string, args: string[]): { program: string; args: string[] } {
  return { program: "python3", args: ["-c", WRAPPER, program, ...args] };
}
