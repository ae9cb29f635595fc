//! What all shards of a process share, read-mostly: the current config and route program, the
//! Call-ID hash seed and the boot id. A reload swaps the config for every shard without
//! stopping any (readers pin a crossbeam epoch; the old config is freed once none holds it).

use crate::config::{self, Loaded, Overrides};
use crate::route::UidGen;
use crossbeam_epoch::{self as epoch, Atomic, Owned};
use std::collections::hash_map::RandomState;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shared state of one process's shards.
pub struct SharedState {
    current: Atomic<Loaded>,
    generation: AtomicU64,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    hasher: RandomState,
    boot: u64,
    started: Instant,
}

impl SharedState {
    /// Shares `loaded`; `config_path` and `overrides` are what [`SharedState::reload`] reads
    /// again.
    pub fn new(loaded: Loaded, config_path: Option<PathBuf>, overrides: Overrides) -> Self {
        SharedState {
            current: Atomic::new(loaded),
            generation: AtomicU64::new(0),
            config_path,
            overrides,
            hasher: RandomState::new(),
            boot: UidGen::boot_prefix(),
            started: Instant::now(),
        }
    }

    /// Runs `f` with the current config and its generation.
    pub fn with<R>(&self, f: impl FnOnce(&Loaded, u64) -> R) -> R {
        let guard = epoch::pin();
        let generation = self.generation.load(Ordering::Acquire);
        let p = self.current.load(Ordering::Acquire, &guard);
        // SAFETY: the pointer is never null (set in `new`, replaced by `swap` with another
        // non-null one) and the pointee is freed only through `defer_destroy`, after every
        // thread pinned now (we are) has unpinned.
        #[allow(unsafe_code)]
        let loaded = unsafe { p.deref() };
        f(loaded, generation)
    }

    /// The generation of the current config (bumped by every reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads the config file again and swaps it in for every shard. `[server]` changes
    /// (sockets, shards, cores) need a restart and are reported as warnings; routes and
    /// `[repo] expire` apply to the next message.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload (started without --config)".into());
        };
        let new = config::load(path, &self.overrides).map_err(|e| e.to_string())?;
        Ok(self.swap(new))
    }

    /// Swaps in an already loaded config; returns the warnings of the change (what only a
    /// restart applies) after the config's own.
    pub fn swap(&self, new: Loaded) -> Vec<String> {
        let mut warnings = new.warnings.clone();
        self.with(|old, _| {
            if old.config.server != new.config.server {
                warnings.push("[server] changed: restart sipshard for it to take effect".into());
            }
            let (o, n) = (&old.config.repo, &new.config.repo);
            if o.max_items != n.max_items
                || o.max_bytes != n.max_bytes
                || o.timer_interval != n.timer_interval
            {
                warnings
                    .push("[repo] max_items, max_bytes and timer_interval apply at restart".into());
            }
        });
        let guard = epoch::pin();
        let old = self.current.swap(Owned::new(new), Ordering::AcqRel, &guard);
        self.generation.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `old` came out of `current` and is no longer reachable from it; readers that
        // still hold it are pinned, so destruction waits for them.
        #[allow(unsafe_code)]
        unsafe {
            guard.defer_destroy(old)
        };
        warnings
    }

    /// The Call-ID hash seed every shard must agree on.
    pub fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// 64 random bits drawn at start, shared by the shards (in `$uid`s and To tags).
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        // SAFETY: we have `&mut self`: no reader can hold the pointer any more.
        #[allow(unsafe_code)]
        unsafe {
            let p = self.current.swap(
                epoch::Shared::null(),
                Ordering::AcqRel,
                epoch::unprotected(),
            );
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}
