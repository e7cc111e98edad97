//! Peak resident memory of this process, as results files report it (training runs, benchmarks).
//! Linux only (/proc); elsewhere nothing is reported.

/// The peak resident set size so far, in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Start measuring the peak anew from the current resident size, so that runs made one after the
/// other in one process (a sweep) each report their own peak. Linux ≥ 4.0 resets `VmHWM` when 5
/// is written to /proc/self/clear_refs; returns whether it did.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_covers_a_large_allocation_and_resets() {
        // 256 MiB: more than any other test of the crate allocates while this one runs beside it.
        const BIG: usize = 256 << 20;
        let Some(before) = peak_rss_bytes() else { return };
        let big = std::hint::black_box(vec![1u8; BIG]);
        assert!(peak_rss_bytes().unwrap() >= before.max(BIG as u64));
        drop(big);
        if reset_peak_rss() {
            assert!(peak_rss_bytes().unwrap() < BIG as u64);
        }
    }
}
