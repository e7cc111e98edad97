//! Read-only memory maps of input files, guarded against the file shrinking underneath.
//!
//! A memory-mapped file that another process truncates (a download restarted, a checkpoint being
//! rewritten) turns the next read of a page past its new end into SIGBUS, which would kill sfn
//! with no message. Headers are validated against the size at open, but nothing can stop a later
//! truncation, so the signal is handled: every live map is listed in a fixed table, and a SIGBUS
//! handler that finds the faulting address in one of them writes
//! `error: FILE: changed while sfn was reading it (truncated under the memory map) ...` to stderr
//! and ends the process with exit status 1, as for any other error. Outputs are written under
//! temporary names and renamed when complete, so nothing partial is left under a final name (the
//! temporary leftovers are removed by the next run's writer or are dot-files beside it). A SIGBUS
//! at any other address is not ours to explain: the default action is restored and the signal
//! raised again.
//!
//! The handler uses only async-signal-safe calls (atomic loads, write(2), _exit(2)); messages are
//! formatted when a map is made.

use memmap2::{Mmap, UncheckedAdvice};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// Maps open at once that get a guard (a checkpoint has one per shard); beyond this a map still
/// works, unguarded.
const SLOTS: usize = 256;

struct Slot {
    /// Start address of the map; 0 while the slot is free (or being filled).
    start: AtomicUsize,
    len: AtomicUsize,
    /// The message for this file (a leaked `Box<[u8]>` while the slot is live).
    msg: AtomicPtr<u8>,
    msg_len: AtomicUsize,
    /// 0 free, 1 taken.
    taken: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array initialiser only
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    msg: AtomicPtr::new(std::ptr::null_mut()),
    msg_len: AtomicUsize::new(0),
    taken: AtomicUsize::new(0),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
static INSTALL: Once = Once::new();

/// A read-only map of a whole file.
pub struct Mapped {
    map: Mmap,
    slot: Option<usize>,
}

impl Mapped {
    /// Map `file` (opened from `path`, named in the message a truncation gives).
    pub fn new(file: &File, path: &Path) -> std::io::Result<Mapped> {
        // SAFETY: the map is read-only and sfn never writes to its inputs (the writer refuses to);
        // a file shrunk underneath by another process is what the SIGBUS handler reports.
        let map = unsafe { Mmap::map(file)? };
        INSTALL.call_once(install_handler);
        let slot = if map.is_empty() { None } else { register(map.as_ptr() as usize, map.len(), path) };
        Ok(Mapped { map, slot })
    }

    /// Drop the pages of `offset..offset+len` from this process (see `Checkpoint::release_range`).
    pub fn dont_need(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        // SAFETY: the mapping is read-only and file-backed (MAP_SHARED), so MADV_DONTNEED only
        // unmaps pages: a later access, even a concurrent one by another thread, faults them in
        // again from the page cache with the same content. It is a hint; failure changes nothing
        // but memory use.
        let _ = unsafe { self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len) };
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let s = &TABLE[i];
            s.start.store(0, Ordering::SeqCst);
            let msg = s.msg.swap(std::ptr::null_mut(), Ordering::SeqCst);
            let len = s.msg_len.load(Ordering::SeqCst);
            if !msg.is_null() {
                // SAFETY: `msg` came from Box::into_raw of a boxed slice of `len` bytes in
                // `register`, and the swap above took it out of the table exactly once.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(msg, len)) });
            }
            s.taken.store(0, Ordering::SeqCst);
        }
    }
}

fn register(start: usize, len: usize, path: &Path) -> Option<usize> {
    let i = TABLE.iter().position(|s| s.taken.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok())?;
    let msg = format!(
        "error: {}: changed while sfn was reading it (truncated under the memory map); nothing was written under the output's name\n",
        path.display()
    )
    .into_bytes()
    .into_boxed_slice();
    let s = &TABLE[i];
    s.msg_len.store(msg.len(), Ordering::SeqCst);
    s.msg.store(Box::into_raw(msg) as *mut u8, Ordering::SeqCst);
    s.len.store(len, Ordering::SeqCst);
    s.start.store(start, Ordering::SeqCst);
    Some(i)
}

#[cfg(unix)]
fn install_handler() {
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler of the SA_SIGINFO shape.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn install_handler() {}

#[cfg(unix)]
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t; only atomics, write(2) and _exit(2) follow.
    unsafe {
        let addr = (*info).si_addr() as usize;
        for s in &TABLE {
            let start = s.start.load(Ordering::SeqCst);
            if start != 0 && addr >= start && addr < start + s.len.load(Ordering::SeqCst) {
                let msg = s.msg.load(Ordering::SeqCst);
                if msg.is_null() {
                    break;
                }
                libc::write(2, msg as *const libc::c_void, s.msg_len.load(Ordering::SeqCst));
                libc::_exit(1);
            }
        }
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}
