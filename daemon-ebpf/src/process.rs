//! Process lifecycle: exec (to attach to TLS libraries of new programs within a second)
//! and exit (to flush the connections of a process that died).
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use qtap_common::{drop_reason, kind, Header, ProcEvent};

use crate::{
    maps::{count_drop, EVENTS},
    self_tgid,
};

#[inline(always)]
fn emit(kind: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let ev: ProcEvent = ProcEvent {
        header: Header {
            kind,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            fd: -1,
            // SAFETY: plain helper call.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if EVENTS.output::<ProcEvent>(&ev, 0).is_err() {
        count_drop(drop_reason::CONTROL_EVENTS, 1);
    }
}

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    emit(kind::EXEC);
    0
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // only the thread-group leader: the process is gone, not one of its threads
    if (pid_tgid >> 32) as u32 != pid_tgid as u32 || (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    emit(kind::EXIT);
    0
}
