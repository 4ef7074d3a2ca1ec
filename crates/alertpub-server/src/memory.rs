//! Handing the allocator's freed pages back to the system.
//!
//! jemalloc keeps the pages it frees for reuse and returns them on its decay schedule
//! (`dirty_decay_ms`, 10 s), but it runs that schedule only when an arena allocates: a server
//! that goes quiet after a burst keeps the burst's freed pages resident for as long as it stays
//! quiet. The startup is such a burst: parsing the config, building a thousand targets and their
//! first round of probes free several times what the targets keep. So does an operator's
//! `GET /api/v1/targets` on a large set. Decaying eagerly all the time (`dirty_decay_ms:0`)
//! would return them too, but costs the loaded paths a purge on every free
//! (docs/BENCHMARKS.md). Instead:
//! - while the server starts (the config loaded, the targets built), freed pages go back at
//!   once ([`Startup`]); it ends before the server serves, so no load runs under it;
//! - after it, every [`TRIM_EVERY`] the pages freed and not reused since go back
//!   ([`trim_periodically`]): a quiet server's RSS is what it holds within seconds of a burst,
//!   the first round of health probes included.
//!
//! Without the `jemalloc` feature these do nothing: the system allocator trims on its own.
//!
//! jemalloc runs with one arena (`narenas:1`, set at build time in `.cargo/config.toml`): with
//! its default of four per CPU, each arena the startup touched kept slabs half used by what the
//! targets keep, and the RSS per configured target was about a sixth higher (docs/BENCHMARKS.md).

/// Sets every arena's `dirty_decay_ms`, and the default of arenas made later, to `decay_ms`,
/// and returns what the default was. A decay of 0 purges an arena's dirty pages at once (jemalloc's
/// `pac_decay_ms_set` decays to a limit of 0 pages) and keeps none after; any other value
/// starts the arena's decay afresh. Muzzy pages are not kept (`muzzy_decay_ms` is 0 by
/// default), so purged pages leave the RSS at once. Arenas that do not exist yet are skipped.
#[cfg(feature = "jemalloc")]
fn set_dirty_decay(decay_ms: isize) -> Option<isize> {
    use tikv_jemalloc_ctl::{Access, AsName};

    let default = b"arenas.dirty_decay_ms\0".name();
    let previous: isize = default.read().ok()?;
    if let Err(error) = default.write(decay_ms) {
        tracing::warn!(%error, "could not set the arenas' dirty_decay_ms");
    }
    let arenas = tikv_jemalloc_ctl::arenas::narenas::read().unwrap_or(0);
    for arena in 0..arenas {
        let key = format!("arena.{arena}.dirty_decay_ms\0");
        // An arena not made yet answers EFAULT, and takes the default when it is.
        let _ = key.as_bytes().name().write(decay_ms);
    }
    Some(previous)
}

/// How often the server hands the pages freed since back to the system.
pub(crate) const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns every arena's unused dirty pages to the system now: sets each arena's decay to 0,
/// which purges, and back.
fn trim() {
    #[cfg(feature = "jemalloc")]
    if let Some(previous) = set_dirty_decay(0) {
        set_dirty_decay(previous);
    }
}

/// Trims every [`TRIM_EVERY`] until `shutdown`: jemalloc decays only when an arena allocates,
/// so without this the pages a burst freed stay resident for as long as the server is quiet.
/// Under load a trim finds few pages, and the next allocations fault a few back in.
pub(crate) async fn trim_periodically(shutdown: tokio_util::sync::CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TRIM_EVERY, TRIM_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => trim(),
        }
    }
}

/// The startup's allocator setting: freed pages go back to the system at once until
/// [`Startup::done`], then on jemalloc's usual decay schedule (and at each trim). Eager
/// purging costs a loaded server a purge on every free, so the startup ends before the
/// server serves.
pub(crate) struct Startup {
    #[cfg(feature = "jemalloc")]
    previous: Option<isize>,
}

impl Startup {
    /// Starts returning freed pages at once. Call it before the config is loaded.
    pub(crate) fn begin() -> Self {
        Self {
            #[cfg(feature = "jemalloc")]
            previous: set_dirty_decay(0),
        }
    }

    /// The startup is over (the targets are built, the server is about to serve): the arenas
    /// decay as usual again, and keep what they free for reuse. Dropping it does the same, so a
    /// startup that fails half way leaves no eager purging behind.
    pub(crate) fn done(self) {
        drop(self);
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        #[cfg(feature = "jemalloc")]
        if let Some(previous) = self.previous.take() {
            set_dirty_decay(previous);
            tracing::debug!(
                dirty_decay_ms = previous,
                "startup over: the allocator decays as usual"
            );
        }
    }
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    /// The build's `JEMALLOC_SYS_WITH_MALLOC_CONF` (`.cargo/config.toml`) reached the allocator.
    #[test]
    fn the_allocator_runs_with_one_arena() {
        assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().ok(), Some(1));
    }

    /// This process's resident set, in bytes (`/proc/self/statm`'s second field, in pages).
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .expect("rss")
            .parse()
            .expect("number");
        pages * 4096
    }

    /// Freed memory stays resident until a purge, and the purge returns it.
    #[test]
    fn a_purge_returns_the_pages_a_burst_freed() {
        // 64 MiB in 64 KiB blocks, written so that they are resident, then freed: small blocks
        // stay in the arenas' extents as dirty pages.
        let blocks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1_u8; 64 * 1024]).collect();
        drop(blocks);
        let before = resident();
        let previous = super::set_dirty_decay(0).expect("jemalloc's decay");
        let after = resident();
        super::set_dirty_decay(previous);
        assert!(
            before.saturating_sub(after) >= 32 << 20,
            "a purge gave back {} bytes of {before}",
            before.saturating_sub(after)
        );
    }
}
