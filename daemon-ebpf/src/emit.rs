//! Copying payload from user memory into ring-buffer records, 16 KiB at a time.
//!
//! A call's bytes are split into records of at most `CHUNK_SIZE` payload bytes, at most
//! `MAX_CHUNKS_PER_CALL` records per call. Each record says where its bytes sit in the
//! stream (`stream_pos`), so user space knows exactly what, if anything, is missing.
//! Nothing is dropped silently: records the ring could not take, bytes past the per-call
//! budget and bytes that could not be read from user memory are counted in `DROPS`.
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated};
use aya_ebpf::{macros::map, maps::PerCpuArray};
use core::{
    ffi::c_void,
    ptr::{read_volatile, write_volatile},
};
use qtap_common::{
    CHUNK_SIZE, DATA_HEADER_LEN, DataEvent, MAX_CHUNKS_PER_CALL, MAX_IOVECS, drop_reason, kind,
};

use crate::maps::{EVENTS, SCRATCH, count_drop};

/// Unread bytes in the ring past which a data record wakes the reader; set by the loader.
/// Below it, data records do not wake anyone (user space polls on a short timeout), so a
/// busy traced process does not pay an interrupt and a context switch per record. 0 (an
/// old loader): wake as the kernel decides (when the reader had caught up).
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

/// `bpf_ringbuf_output` flags for a data record of `size` bytes: wake the reader only
/// when this record takes the unread bytes across the threshold.
#[inline(always)]
fn data_flags(size: u64) -> u64 {
    // SAFETY: a read of a global the loader rewrites before load.
    let threshold = unsafe { read_volatile(&WAKEUP_BYTES) };
    if threshold == 0 {
        return 0;
    }
    // SAFETY: plain helper call on our ring buffer map.
    let pending = unsafe {
        generated::bpf_ringbuf_query(&EVENTS as *const _ as *mut c_void, BPF_RB_AVAIL_DATA as u64)
    };
    if pending < threshold && pending + size >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

pub struct Meta {
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    pub ssl: u64,
    /// stream position of the call's first byte
    pub pos: u64,
    pub direction: u8,
    pub source: u8,
    /// the record's time: when the call began for sends; 0 for now (receives, at return)
    pub ts_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IoVec {
    base: u64,
    len: u64,
}

#[inline(always)]
fn scratch(meta: &Meta, total: u64) -> Option<&'static mut DataEvent> {
    let ev = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot, only this program on this CPU uses it now.
    let ev = unsafe { &mut *ev };
    ev.header.kind = kind::DATA;
    ev.header.pid = meta.pid;
    ev.header.tid = meta.tid;
    ev.header.fd = meta.fd;
    ev.header.ts_ns = if meta.ts_ns != 0 {
        meta.ts_ns
    } else {
        // SAFETY: plain helper call.
        unsafe { bpf_ktime_get_ns() }
    };
    ev.ssl = meta.ssl;
    ev.call_len = if total > u32::MAX as u64 {
        u32::MAX
    } else {
        total as u32
    };
    ev.direction = meta.direction;
    ev.source = meta.source;
    ev.offset = 0;
    ev.len = 0;
    ev.stream_pos = meta.pos;
    Some(ev)
}

/// Loop state of [`emit`], kept in map memory: the verifier then sees the same
/// (unknown) values at the top of every turn whatever path the previous turn took, so
/// it can prune, and its work stays linear in the number of turns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EmitState {
    done: u64,
    total: u64,
    base: u64,
    left: u64,
    idx: u64,
    iov: u64,
    iovcnt: u64,
    pos: u64,
}

#[map]
static EMIT_STATE: PerCpuArray<EmitState> = PerCpuArray::with_max_entries(1, 0);

/// Emits the first `total` bytes of a call: from the plain buffer `buf` when `iovcnt`
/// is 0, else from the iovec array at `buf`. One flat loop, one record (or one iovec
/// fetch) per turn.
#[inline(always)]
pub fn emit(meta: &Meta, buf: u64, iovcnt: u64, total: u64) {
    let Some(ev) = scratch(meta, total) else {
        return;
    };
    let Some(st) = EMIT_STATE.get_ptr_mut(0) else {
        return;
    };
    let init = if iovcnt == 0 {
        EmitState {
            done: 0,
            total,
            base: buf,
            left: total,
            idx: 0,
            iov: 0,
            iovcnt: 0,
            pos: meta.pos,
        }
    } else {
        EmitState {
            done: 0,
            total,
            base: 0,
            left: 0,
            idx: 0,
            iov: buf,
            iovcnt,
            pos: meta.pos,
        }
    };
    // SAFETY: per-CPU map slot.
    unsafe { write_volatile(st, init) };
    for _ in 0..(MAX_CHUNKS_PER_CALL + 8) {
        if !step(ev, st) {
            break;
        }
    }
    // SAFETY: per-CPU map slot.
    let s = unsafe { read_volatile(st) };
    if s.done < s.total {
        count_drop(drop_reason::PER_CALL_LIMIT_BYTES, s.total - s.done);
    }
}

#[inline(always)]
fn step(ev: &mut DataEvent, st: *mut EmitState) -> bool {
    // SAFETY: per-CPU map slot.
    let s = unsafe { read_volatile(st) };
    if s.done >= s.total {
        return false;
    }
    if s.left == 0 {
        if s.idx >= s.iovcnt || s.idx >= MAX_IOVECS as u64 {
            return false;
        }
        // SAFETY: user memory through the checked helper.
        let Ok(v) = (unsafe { bpf_probe_read_user((s.iov + s.idx * 16) as *const IoVec) }) else {
            return false;
        };
        // SAFETY: per-CPU map slot.
        unsafe {
            write_volatile(&raw mut (*st).idx, s.idx + 1);
            write_volatile(&raw mut (*st).base, v.base);
            write_volatile(&raw mut (*st).left, v.len);
        }
        return true;
    }
    let mut n = s.left;
    if n > s.total - s.done {
        n = s.total - s.done;
    }
    if n > CHUNK_SIZE as u64 {
        n = CHUNK_SIZE as u64;
    }
    let n32 = n as u32;
    if n32 == 0 || n32 > CHUNK_SIZE as u32 {
        return false;
    }
    // SAFETY: the destination is the scratch record's payload (CHUNK_SIZE bytes),
    // n32 ≤ CHUNK_SIZE; the helper checks the user address.
    let r = unsafe {
        generated::bpf_probe_read_user(
            ev.data.as_mut_ptr() as *mut c_void,
            n32,
            s.base as *const c_void,
        )
    };
    if r != 0 {
        count_drop(drop_reason::READ_FAULT_BYTES, n);
    } else {
        ev.offset = s.done as u32;
        ev.len = n32;
        ev.stream_pos = s.pos + s.done;
        let size = DATA_HEADER_LEN as u64 + n32 as u64;
        let flags = data_flags(size);
        // SAFETY: `size` ≤ size_of::<DataEvent>(); the record lives in map memory.
        let r = unsafe {
            generated::bpf_ringbuf_output(
                &EVENTS as *const _ as *mut c_void,
                ev as *mut DataEvent as *mut c_void,
                size,
                flags,
            )
        };
        if r != 0 {
            count_drop(drop_reason::RINGBUF_FULL_EVENTS, 1);
            count_drop(drop_reason::RINGBUF_FULL_BYTES, n);
        }
    }
    // SAFETY: per-CPU map slot.
    unsafe {
        write_volatile(&raw mut (*st).done, s.done + n);
        write_volatile(&raw mut (*st).base, s.base + n);
        write_volatile(&raw mut (*st).left, s.left - n);
    }
    true
}

/// Tells user space that `total` bytes moved without being seen (sendfile).
#[inline(always)]
pub fn emit_unseen(meta: &Meta, total: u64) {
    let Some(ev) = scratch(meta, total) else {
        return;
    };
    let flags = data_flags(DATA_HEADER_LEN as u64);
    // SAFETY: header-only record from map memory.
    let r = unsafe {
        generated::bpf_ringbuf_output(
            &EVENTS as *const _ as *mut c_void,
            ev as *mut DataEvent as *mut c_void,
            DATA_HEADER_LEN as u64,
            flags,
        )
    };
    if r != 0 {
        count_drop(drop_reason::CONTROL_EVENTS, 1);
    }
}
