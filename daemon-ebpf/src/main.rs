//! qtap's kernel programs. One file per hook family:
//! - `data`: read/write-family syscall tracepoints (plaintext sockets, and learning
//!   which fd an `SSL*` writes to);
//! - `conn`: socket/connect/accept/close tracepoints and `sock/inet_sock_set_state`;
//! - `process`: `sched_process_exec` / `sched_process_exit`;
//! - `ssl`: uprobes and uretprobes on OpenSSL's `SSL_read`/`SSL_write` (and `_ex`);
//! - `gotls`: uprobes at the entry and at each `RET` of Go's `crypto/tls.(*Conn).Read`
//!   and `Write` (never uretprobes on Go code).
//!
//! Everything reaches user space through one ring buffer (`EVENTS`); anything that
//! could not be delivered is counted in `DROPS`. No kernel struct is read by offset:
//! only tracepoint fields, syscall arguments and user memory.
#![no_std]
#![no_main]

mod conn;
mod data;
mod emit;
mod gotls;
mod maps;
mod process;
mod ssl;

/// The daemon's own tgid, set by the loader: its own sockets are never captured.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

/// Where `task_struct` keeps `exit_code` on this kernel (from its BTF), set by the loader;
/// 0: unknown.
#[unsafe(no_mangle)]
static TASK_EXIT_CODE_OFF: u32 = 0;

#[inline(always)]
pub(crate) fn task_exit_code_off() -> u32 {
    // SAFETY: a read of a global the loader rewrites before load.
    unsafe { core::ptr::read_volatile(&TASK_EXIT_CODE_OFF) }
}

#[inline(always)]
pub(crate) fn self_tgid() -> u32 {
    // SAFETY: a read of a global the loader rewrites before load.
    unsafe { core::ptr::read_volatile(&SELF_TGID) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
