//! Process lifecycle: exec (to attach to TLS libraries of new programs within a second)
//! and exit (to flush the connections of a process that died).
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
        generated::{bpf_get_current_cgroup_id, bpf_get_current_task},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use qtap_common::{EXIT_CODE_UNKNOWN, FILENAME_LEN, Header, ProcEvent, drop_reason, kind};

use crate::{
    maps::{
        ACCEPT_ARGS, CONNECT_ARGS, DATA_ARGS, EVENTS, GO_THREADS, SOCKET_ARGS, SSL_ARGS,
        SSL_PENDING, count_drop,
    },
    self_tgid, task_exit_code_off,
};

#[inline(always)]
fn emit(ctx: &TracePointContext, kind: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let mut ev: ProcEvent = ProcEvent {
        header: Header {
            kind,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            fd: -1,
            // SAFETY: plain helper call.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        uid: bpf_get_current_uid_gid() as u32,
        exit_code: EXIT_CODE_UNKNOWN,
        filename: [0; FILENAME_LEN],
        // SAFETY: plain helper call (cgroup v2 id; the root's on v1-only hosts).
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    };
    if kind == kind::EXEC {
        // sched_process_exec: `__data_loc char[] filename` at offset 8 (offset | len << 16)
        // SAFETY: tracepoint record field, then a bounded kernel string read.
        unsafe {
            if let Ok(loc) = ctx.read_at::<u32>(8) {
                let off = (loc & 0xffff) as usize;
                let src = (ctx.as_ptr() as *const u8).add(off);
                let _ = bpf_probe_read_kernel_str_bytes(src, &mut ev.filename);
            }
        }
    }
    if kind == kind::EXIT {
        // do_exit() stores the code in the task before this tracepoint fires
        let off = task_exit_code_off();
        if off > 0 && off < 16384 {
            // SAFETY: a bounded read inside the current task_struct, through the helper.
            unsafe {
                let task = bpf_get_current_task() as *const u8;
                if let Ok(code) = bpf_probe_read_kernel(task.add(off as usize) as *const i32) {
                    ev.exit_code = code as u32;
                }
            }
        }
    }
    if EVENTS.output::<ProcEvent>(&ev, 0).is_err() {
        count_drop(drop_reason::CONTROL_EVENTS, 1);
    }
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    emit(&ctx, kind::EXEC);
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // every thread: its entries in the per-thread tables go with it
    let _ = DATA_ARGS.remove(&pid_tgid);
    let _ = SSL_ARGS.remove(&pid_tgid);
    let _ = SSL_PENDING.remove(&pid_tgid);
    let _ = GO_THREADS.remove(&pid_tgid);
    let _ = CONNECT_ARGS.remove(&pid_tgid);
    let _ = ACCEPT_ARGS.remove(&pid_tgid);
    let _ = SOCKET_ARGS.remove(&pid_tgid);
    // only the thread-group leader: the process is gone, not one of its threads
    if (pid_tgid >> 32) as u32 != pid_tgid as u32 || (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    emit(&ctx, kind::EXIT);
    0
}
