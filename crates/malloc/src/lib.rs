//! Tunes glibc's allocator so that memory a burst of large requests used is given back
//! to the system once they are done — the one job of this crate, and the only unsafe
//! code of the workspace (two calls into glibc; `STYLE.md` forbids `unsafe` everywhere
//! else).
//!
//! # Why
//! glibc serves a large block (≥ 128 KiB by default) with its own `mmap`, and returns
//! it to the system when it is freed — but then it *raises* that threshold to the
//! block's size (up to 32 MiB), so that the next blocks of that size come from the
//! arenas instead. Freed arena memory goes back only when it sits at an arena's top,
//! and every SQLite connection of the store runs on a thread of its own, with an arena
//! of its own. So after a burst of large specs (sixteen of 192 KB in `cargo xtask
//! bench`) `openloom serve` kept about 8 MB it no longer used, for good.
//!
//! Fixing the threshold at [`MMAP_THRESHOLD`] stops that adjustment: large blocks are
//! always mapped and always returned, and [`TRIM_THRESHOLD`] makes arenas give back
//! free memory at their top sooner. Measured in `docs/benchmarks.md` ("Memory after a
//! burst"): the burst then leaves +5 MB (SQLite's page cache, bounded) instead of
//! +7.8 MB, with no change in throughput. Capping the number of arenas as well
//! (`M_ARENA_MAX`) would return more but costs throughput on a loaded server, so it is
//! not done.
//!
//! The settings are set with `mallopt` in the process itself, not with
//! `GLIBC_TUNABLES`, so they do not reach the commands and the OpenCode server that
//! `openloom` starts. Elsewhere than Linux with glibc, [`tune`] does nothing.

/// Blocks this large or larger are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: i32 = 64 * 1024;
/// Free memory at an arena's top past this much is given back.
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// What [`tune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuned {
    /// Both settings were accepted.
    Yes,
    /// glibc refused a setting (it answers 0; nothing changed for that one).
    Refused,
    /// Not Linux with glibc: nothing to tune.
    NotGlibc,
}

/// Sets [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] for this process. Call it once, early
/// in `main`; calling it again does no harm.
pub fn tune() -> Tuned {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes allocator parameters, under the allocator's
        // own lock; it is safe to call at any time from any thread, touches no memory
        // of ours, and reports a refused value by returning 0.
        #[allow(unsafe_code)]
        let accepted = unsafe {
            [
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            ]
        };
        if accepted.contains(&0) { Tuned::Refused } else { Tuned::Yes }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        Tuned::NotGlibc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_settings() {
        let expected = if cfg!(all(target_os = "linux", target_env = "gnu")) {
            Tuned::Yes
        } else {
            Tuned::NotGlibc
        };
        assert_eq!(tune(), expected);
        assert_eq!(tune(), expected, "a second call is harmless");
    }

    /// With the threshold fixed, a large block freed goes back to the system at once:
    /// the process's resident size falls again. (Without `tune`, glibc raises its
    /// threshold after the first such free and later blocks stay in the arena.)
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_blocks_are_given_back_when_freed() {
        fn resident_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmRSS")
        }
        assert_eq!(tune(), Tuned::Yes);
        // Free one big block first: without the fix this is what raises the threshold.
        drop(vec![1u8; 4 << 20]);
        let before = resident_kib();
        // Each large block with a small one that outlives it after it, as a server's
        // long-lived allocations fall between its requests': freed large blocks are
        // then holes in an arena, not its top, and an arena gives back only its top.
        let (blocks, kept): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            (0..64).map(|i| (vec![i as u8; 192 * 1024], vec![i as u8; 64])).unzip();
        let during = resident_kib();
        drop(blocks);
        let after = resident_kib();
        drop(kept);
        assert!(during >= before + 10_000, "the blocks were resident: {before} → {during} KiB");
        assert!(
            after < before + 2_000,
            "freed blocks were kept: {before} → {during} → {after} KiB"
        );
    }
}
