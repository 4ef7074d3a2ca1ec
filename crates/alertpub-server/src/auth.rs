//! Bearer-token auth: tokens from a file, one a line, compared in constant time.
//!
//! Tokens are kept only as SHA-256 digests, and a presented token is hashed and compared with
//! every digest without stopping early, so neither a token's content nor its length shows in the
//! time an answer takes. The file is re-read when its modification time changes, so a rotated
//! token (a Kubernetes Secret swapping its symlink, say) takes effect without a restart.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured tokens.
pub(crate) struct Auth {
    path: PathBuf,
    /// Whether the two ingest endpoints need a token too.
    pub(crate) protect_ingest: bool,
    /// Whether `/api/v1` reads need a token too.
    pub(crate) protect_reads: bool,
    state: RwLock<Tokens>,
}

struct Tokens {
    modified: Option<SystemTime>,
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("path", &self.path)
            .field("protect_ingest", &self.protect_ingest)
            .field("protect_reads", &self.protect_reads)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Reads the token file. An empty file is an error at startup: it would lock every write out
    /// from the first request, which is a mistake rather than a decision.
    pub(crate) fn load(
        path: &Path,
        protect_ingest: bool,
        protect_reads: bool,
    ) -> anyhow::Result<Self> {
        let tokens = read(path)?;
        anyhow::ensure!(
            !tokens.digests.is_empty(),
            "the token file {} holds no token",
            path.display()
        );
        Ok(Self {
            path: path.to_path_buf(),
            protect_ingest,
            protect_reads,
            state: RwLock::new(tokens),
        })
    }

    /// Whether the `Authorization` header value carries a configured token.
    pub(crate) fn allows(&self, authorization: Option<&[u8]>) -> bool {
        self.refresh();
        let Some(token) = authorization.and_then(bearer) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token).into();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = subtle::Choice::from(0);
        for digest in &state.digests {
            found |= digest.ct_eq(&presented);
        }
        found.into()
    }

    /// Re-reads the file when it changed. The file is the truth: emptied, it revokes every token;
    /// gone or unreadable, it revokes them too (and says so), since keeping a token its operator
    /// meant to withdraw is worse than refusing writes until the file is back.
    fn refresh(&self) {
        let modified = modified(&self.path);
        let current = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .modified;
        if modified == current {
            return;
        }
        let tokens = match read(&self.path) {
            Ok(tokens) if tokens.digests.is_empty() => {
                tracing::warn!(
                    "the token file holds no token: every token is revoked, and requests that \
                     need one are refused"
                );
                tokens
            }
            Ok(tokens) => {
                tracing::info!(tokens = tokens.digests.len(), "bearer tokens reloaded");
                tokens
            }
            Err(err) => {
                tracing::error!(
                    error = %format!("{err:#}"),
                    "the token file cannot be read: every token is revoked until it can"
                );
                Tokens {
                    modified,
                    digests: Vec::new(),
                }
            }
        };
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = tokens;
    }
}

fn read(path: &Path) -> anyhow::Result<Tokens> {
    let modified = modified(path);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let digests: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|token| Sha256::digest(token.as_bytes()).into())
        .collect();
    Ok(Tokens { modified, digests })
}

/// A file's modification time, to notice a rotated token file.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The token of a `Bearer` authorization value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_a_configured_bearer_token() {
        let dir = std::env::temp_dir().join(format!("alertpub-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "# operators\nfirst-token\n\nsecond-token\n").unwrap();
        let auth = Auth::load(&path, false, false).unwrap();
        assert!(auth.allows(Some(b"Bearer first-token")));
        assert!(auth.allows(Some(b"bearer second-token")));
        assert!(!auth.allows(Some(b"Bearer first-toke")));
        assert!(!auth.allows(Some(b"Basic first-token")));
        assert!(!auth.allows(Some(b"Bearer ")));
        assert!(!auth.allows(None));
        std::fs::write(&path, "").unwrap();
        assert!(Auth::load(&path, false, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn emptying_or_removing_the_token_file_revokes_every_token() {
        let dir = std::env::temp_dir().join(format!("alertpub-revoke-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "kept-token\n").unwrap();
        let auth = Auth::load(&path, false, false).unwrap();
        assert!(auth.allows(Some(b"Bearer kept-token")));
        // Emptied: a changed modification time is what the refresh looks at.
        std::fs::write(&path, "").unwrap();
        set_modified(&path, 1);
        assert!(!auth.allows(Some(b"Bearer kept-token")));
        // A new token takes effect, and the old one stays revoked.
        std::fs::write(&path, "new-token\n").unwrap();
        set_modified(&path, 2);
        assert!(auth.allows(Some(b"Bearer new-token")));
        assert!(!auth.allows(Some(b"Bearer kept-token")));
        // Removed: nothing is allowed.
        std::fs::remove_file(&path).unwrap();
        assert!(!auth.allows(Some(b"Bearer new-token")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Sets the file's modification time `secs` seconds after a fixed instant, so that two writes
    /// within the file system's timestamp granularity still count as a change.
    fn set_modified(path: &Path, secs: u64) {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }
}
