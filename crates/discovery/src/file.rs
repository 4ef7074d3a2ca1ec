//! The config file as a [`TargetSource`], hot-reloaded on SIGHUP and on change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{Clock, StaticTargetSource, SystemClock, TargetSet, TargetSource};
use chrono::{DateTime, Utc};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::load::{ConfigError, PublisherFactory, Warning, load_file, referenced_files};

/// How long a burst of file events is allowed to settle before one reload.
const SETTLE: Duration = Duration::from_millis(150);

/// The outcome of the last reload attempt, for the API and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// Successful loads so far, the first included.
    pub generation: u64,
    /// The last attempt's error, when it failed; the previous target set stays in force.
    pub last_error: Option<String>,
    /// The warnings of the set in force.
    pub warnings: Vec<Warning>,
    /// When the set in force was loaded (the first load or the last successful reload), by the
    /// source's clock.
    pub loaded_at: DateTime<Utc>,
}

/// The config file's targets, replaced in one step on every successful reload.
///
/// An invalid new file keeps the old set in force, and its error is reported through
/// [`status`](Self::status) and the log. `*_file` secrets are re-read on every reload, and
/// [`watch`](Self::watch) reloads when any watched directory changes — directories, not files,
/// because Kubernetes rotates mounted secrets by swapping symlinks.
pub struct FileSource {
    path: PathBuf,
    factory: Arc<dyn PublisherFactory>,
    targets: StaticTargetSource,
    config: watch::Sender<Arc<Config>>,
    status: Mutex<ReloadStatus>,
    generation: AtomicU64,
    /// A digest of the file and every secret it names, as last loaded.
    digest: AtomicU64,
    /// What stamps [`ReloadStatus::loaded_at`].
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Loads the file; the server refuses to start when this fails.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(
        path: impl Into<PathBuf>,
        factory: Arc<dyn PublisherFactory>,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        let digest = digest_of(&path);
        let loaded = load_file(&path, factory.as_ref())?;
        for warning in &loaded.warnings {
            tracing::warn!(target = %warning.target, "{}", warning.message);
        }
        Ok(Self {
            path,
            factory,
            targets: StaticTargetSource::new(loaded.targets),
            config: watch::Sender::new(loaded.config),
            status: Mutex::new(ReloadStatus {
                generation: 1,
                last_error: None,
                warnings: loaded.warnings,
                loaded_at: SystemClock.now(),
            }),
            generation: AtomicU64::new(1),
            digest: AtomicU64::new(digest),
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps loads with `clock` from now on (and the load in force with its time now).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.status
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .loaded_at = clock.now();
        self.clock = clock;
        self
    }

    /// The config file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The last reload's outcome.
    #[must_use]
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reloads now. On success the new target set replaces the old one in one step; on failure the
    /// old set stays and the error is recorded.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid file.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let digest = digest_of(&self.path);
        match load_file(&self.path, self.factory.as_ref()) {
            Ok(loaded) => {
                self.digest.store(digest, Ordering::SeqCst);
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                for warning in &loaded.warnings {
                    tracing::warn!(target = %warning.target, "{}", warning.message);
                }
                tracing::info!(path = %self.path.display(), targets = loaded.targets.len(), generation, "config reloaded");
                self.config.send_replace(loaded.config);
                self.targets.replace(loaded.targets);
                *status = ReloadStatus {
                    generation,
                    last_error: None,
                    warnings: loaded.warnings,
                    loaded_at: self.clock.now(),
                };
                Ok(())
            }
            Err(err) => {
                tracing::error!(path = %self.path.display(), error = %err, "config reload failed; keeping the previous targets");
                status.last_error = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// The directories watched: the config file's and those of every `*_file` it names.
    #[must_use]
    pub fn watched_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        let files = std::iter::once(self.path.clone()).chain(referenced_files(&self.config()));
        for file in files {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            dirs.insert(dir);
        }
        dirs
    }

    /// Reloads on SIGHUP and whenever a watched directory changes, until `shutdown`. The watcher
    /// is re-armed after each reload, since the set of secret files may change.
    pub async fn watch(&self, shutdown: CancellationToken) {
        let (events, mut changed) = mpsc::channel::<()>(1);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reloading on file changes only");
                None
            }
        };
        let mut watcher = self.arm(&events);
        // Anything that changed between `load` and arming the watcher would raise no event.
        if self.changed_on_disk() {
            let _ = events.try_send(());
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = changed.recv() => {
                    // Let a burst of events (an editor's save, a symlink swap) settle, then reload once.
                    tokio::time::sleep(SETTLE).await;
                    while changed.try_recv().is_ok() {}
                    if !self.changed_on_disk() {
                        continue;
                    }
                }
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading the config");
                }
            }
            if self.reload().is_ok() {
                drop(watcher);
                watcher = self.arm(&events);
            }
        }
    }

    /// Whether the file or a secret it names differs from what was last loaded. The files it
    /// names are those of the config in force: while the text is unchanged they are the same,
    /// and once it changes the digest differs anyway, so the text is not parsed again here (a
    /// parse of a thousand targets' config is megabytes, on every file event).
    fn changed_on_disk(&self) -> bool {
        let named = referenced_files(&self.config());
        digest_with(&self.path, &named) != self.digest.load(Ordering::SeqCst)
    }

    fn arm(&self, events: &mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let events = events.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    // A full channel already holds a pending reload.
                    let _ = events.try_send(());
                }
            })
            .map_err(|err| tracing::warn!(error = %err, "cannot watch the config for changes"))
            .ok()?;
        for dir in self.watched_dirs() {
            if let Err(err) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot watch directory");
            }
        }
        Some(watcher)
    }
}

/// Hashes the config file and every file it names (following symlinks), so a rotated secret or an
/// edited file changes the digest. Unreadable files hash as absent.
fn digest_of(path: &Path) -> u64 {
    let text = std::fs::read(path).ok();
    let named = text
        .as_ref()
        .and_then(|t| crate::load::parse(&String::from_utf8_lossy(t), path).ok())
        .map(|config| referenced_files(&config))
        .unwrap_or_default();
    digest(text.as_deref(), &named)
}

/// [`digest_of`] with the files the text names already known.
fn digest_with(path: &Path, named: &[PathBuf]) -> u64 {
    digest(std::fs::read(path).ok().as_deref(), named)
}

fn digest(text: Option<&[u8]>, named: &[PathBuf]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    for file in named {
        file.hash(&mut hasher);
        std::fs::read(file).ok().hash(&mut hasher);
    }
    hasher.finish()
}

impl TargetSource for FileSource {
    fn snapshot(&self) -> Arc<TargetSet> {
        self.targets.snapshot()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<TargetSet>> {
        self.targets.subscribe()
    }
}
