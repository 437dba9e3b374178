//! Secrets from the configuration, a file, or — for the embedded default — generated on first start.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is not configured (set it inline or as a file)")]
    Missing(&'static str),
    #[error("{what}: cannot read or write {path}: {error}")]
    Io {
        what: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("{0}: {1}")]
    Generate(&'static str, String),
    #[error("{0} in {1} is empty")]
    Empty(&'static str, String),
}

pub struct Secret {
    pub value: String,
    /// Created just now; `serve` prints it once.
    pub generated: bool,
}

/// Inline value first, then the file; a missing file is created with a generated value when allowed
/// (mode 0600, missing folders 0700).
pub fn resolve(
    what: &'static str,
    inline: Option<&str>,
    file: Option<&Path>,
    generate: bool,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<Secret, SecretError> {
    if let Some(v) = inline {
        return Ok(Secret {
            value: v.to_string(),
            generated: false,
        });
    }
    let path = file.ok_or(SecretError::Missing(what))?;
    let io = |error| SecretError::Io {
        what,
        path: path.display().to_string(),
        error,
    };
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim().is_empty() => Err(SecretError::Empty(what, path.display().to_string())),
        Ok(v) => Ok(Secret {
            value: v.trim().to_string(),
            generated: false,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let value = make().map_err(|e| SecretError::Generate(what, e))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::fsperm::create_private_dir_all(dir).map_err(io)?;
            }
            write_private(path, &value).map_err(io)?;
            Ok(Secret {
                value,
                generated: true,
            })
        }
        Err(e) => Err(io(e)),
    }
}

/// Like [`resolve`], for a secret whose feature is off when neither value nor file is configured.
pub fn resolve_optional(
    what: &'static str,
    inline: Option<&str>,
    file: Option<&Path>,
    generate: bool,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<Option<Secret>, SecretError> {
    if inline.is_none() && file.is_none() {
        return Ok(None);
    }
    resolve(what, inline, file, generate, make).map(Some)
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(value.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// A 256-bit random token, URL-safe base64.
pub fn new_token() -> Result<String, String> {
    use base64::Engine;
    let bytes: [u8; 32] = crate::hold::crypto::random().map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time comparison of a presented secret with the expected one.
pub fn equal(presented: &[u8], expected: &[u8]) -> bool {
    let a = ring::digest::digest(&ring::digest::SHA256, presented);
    let b = ring::digest::digest(&ring::digest::SHA256, expected);
    // Equal-length digests: compare without early exit.
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
