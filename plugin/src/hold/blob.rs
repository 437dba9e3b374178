//! Large attachments at rest: one file per attachment in the blob folder (`hold.blob_dir`), sealed as a
//! stream of AES-256-GCM chunks so that neither sealing nor opening needs the whole file in memory.
//!
//! The format (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár): a 12-byte header
//! (`NTB1` and an 8-byte random nonce prefix), then chunks of [`CHUNK`] plaintext bytes, each sealed
//! with the nonce `prefix ‖ counter` (32-bit, big-endian) and the associated data `blob id ‖ last`,
//! where `last` is 1 for the final chunk only (which holds 0..[`CHUNK`] bytes). Reordered or swapped
//! chunks fail their nonce, a file cut at a chunk boundary lacks its final chunk, a file of another
//! blob fails its associated data. The random per-blob data key is wrapped by the master key with
//! the blob id as associated data, like the per-message keys of held copies ([`super::crypto`]).
//!
//! [`BlobWriter`] writes to `<id>.tmp` (0600, in a 0700 folder), then fsyncs and renames it into
//! place; [`BlobReader`] yields the plaintext chunk by chunk, and an error — never unchecked bytes —
//! at the first chunk that does not open.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM},
    digest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::crypto::{random, KeyError, MasterKey};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"NTB1";
const HEADER: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("blob {0} does not open: tampered, truncated or another key")]
    Corrupt(String),
}

/// What a finished blob is, for its `hold_blobs` row.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    pub size: u64,
    /// SHA-256 (hex) of the plaintext.
    pub sha256: String,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
}

/// The file of a blob in `dir`.
pub fn path(dir: &Path, blob_id: &str) -> PathBuf {
    dir.join(format!("{blob_id}.blob"))
}

fn nonce(prefix: &[u8; 8], counter: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(blob_id: &str, last: bool) -> Vec<u8> {
    let mut a = blob_id.as_bytes().to_vec();
    a.push(u8::from(last));
    a
}

fn data_key(bytes: &[u8; 32]) -> Result<LessSafeKey, KeyError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Format)?,
    ))
}

/// Seals one blob into its file, chunk by chunk.
pub struct BlobWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    blob_id: String,
    key: LessSafeKey,
    key_id: String,
    wrapped_key: Vec<u8>,
    prefix: [u8; 8],
    counter: u32,
    buf: Vec<u8>,
    size: u64,
    sha: digest::Context,
    done: bool,
}

impl BlobWriter {
    /// Starts `dir/<blob_id>.blob` (as `.tmp` until [`BlobWriter::finish`]); creates `dir` 0700.
    pub async fn create(dir: &Path, blob_id: &str, master: &MasterKey) -> Result<Self, BlobError> {
        crate::fsperm::create_private_dir_all(dir)?;
        let key_bytes = random::<32>()?;
        let prefix = random::<8>()?;
        let dest = path(dir, blob_id);
        let tmp = dest.with_extension("tmp");
        let mut opts = tokio::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(crate::fsperm::FILE_MODE);
        let mut file = opts.open(&tmp).await?;
        file.write_all(MAGIC).await?;
        file.write_all(&prefix).await?;
        Ok(BlobWriter {
            file,
            tmp,
            dest,
            blob_id: blob_id.to_string(),
            key: data_key(&key_bytes)?,
            key_id: master.id().to_string(),
            wrapped_key: master.wrap(blob_id, &key_bytes)?,
            prefix,
            counter: 0,
            buf: Vec::with_capacity(CHUNK + TAG),
            size: 0,
            sha: digest::Context::new(&digest::SHA256),
            done: false,
        })
    }

    /// Adds plaintext; every full chunk is sealed and written.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        self.sha.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.seal_chunk(false).await?;
            }
        }
        Ok(())
    }

    async fn seal_chunk(&mut self, last: bool) -> Result<(), BlobError> {
        let n = nonce(&self.prefix, self.counter);
        self.key
            .seal_in_place_append_tag(n, Aad::from(aad(&self.blob_id, last)), &mut self.buf)
            .map_err(|_| KeyError::Random)?;
        self.file.write_all(&self.buf).await?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| BlobError::Corrupt(self.blob_id.clone()))?;
        Ok(())
    }

    /// Seals the final chunk, fsyncs the file, renames it into place and fsyncs the folder.
    pub async fn finish(mut self) -> Result<SealedBlob, BlobError> {
        self.seal_chunk(true).await?;
        self.file.flush().await?;
        self.file.sync_all().await?;
        tokio::fs::rename(&self.tmp, &self.dest).await?;
        if let Some(dir) = self.dest.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        self.done = true;
        let sha = std::mem::replace(&mut self.sha, digest::Context::new(&digest::SHA256));
        Ok(SealedBlob {
            size: self.size,
            sha256: hex::encode(sha.finish()),
            key_id: self.key_id.clone(),
            wrapped_key: std::mem::take(&mut self.wrapped_key),
        })
    }
}

impl Drop for BlobWriter {
    /// An unfinished blob leaves no file behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Opens a blob chunk by chunk.
pub struct BlobReader {
    file: tokio::fs::File,
    blob_id: String,
    key: LessSafeKey,
    prefix: [u8; 8],
    counter: u32,
    /// Read ahead: one sealed chunk and, when there is one, the first byte after it.
    pending: Vec<u8>,
    finished: bool,
}

impl BlobReader {
    /// Opens the file and unwraps its key; fails for a missing file, a bad header or a wrong key.
    pub async fn open(
        dir: &Path,
        blob_id: &str,
        wrapped_key: &[u8],
        master: &MasterKey,
    ) -> Result<Self, BlobError> {
        let key = data_key(&master.unwrap(blob_id, wrapped_key)?)?;
        let mut file = tokio::fs::File::open(path(dir, blob_id)).await?;
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header)
            .await
            .map_err(|_| BlobError::Corrupt(blob_id.into()))?;
        if &header[..4] != MAGIC {
            return Err(BlobError::Corrupt(blob_id.into()));
        }
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&header[4..]);
        Ok(BlobReader {
            file,
            blob_id: blob_id.to_string(),
            key,
            prefix,
            counter: 0,
            pending: Vec::with_capacity(CHUNK + TAG + 1),
            finished: false,
        })
    }

    /// The next plaintext chunk; `None` after the final one. An error for anything that does not open.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BlobError> {
        if self.finished {
            return Ok(None);
        }
        let want = CHUNK + TAG + 1;
        while self.pending.len() < want {
            let mut piece = vec![0u8; want - self.pending.len()];
            let n = self.file.read(&mut piece).await?;
            if n == 0 {
                break;
            }
            self.pending.extend_from_slice(&piece[..n]);
        }
        let last = self.pending.len() < want;
        let sealed_len = if last {
            self.pending.len()
        } else {
            CHUNK + TAG
        };
        if sealed_len < TAG {
            return Err(BlobError::Corrupt(self.blob_id.clone()));
        }
        let rest = self.pending.split_off(sealed_len);
        let mut sealed = std::mem::replace(&mut self.pending, rest);
        let n = nonce(&self.prefix, self.counter);
        let plain = self
            .key
            .open_in_place(n, Aad::from(aad(&self.blob_id, last)), &mut sealed)
            .map_err(|_| BlobError::Corrupt(self.blob_id.clone()))?;
        let len = plain.len();
        sealed.truncate(len);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| BlobError::Corrupt(self.blob_id.clone()))?;
        self.finished = last;
        Ok(Some(Bytes::from(sealed)))
    }

    /// The plaintext as a stream of chunks (for an HTTP body); it ends with an error at a bad chunk.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, BlobError>> + Send + 'static {
        futures_util::stream::try_unfold(self, |mut r| async move {
            Ok(r.next_chunk().await?.map(|b| (b, r)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn seal(dir: &Path, id: &str, k: &MasterKey, plain: &[u8]) -> SealedBlob {
        let mut w = BlobWriter::create(dir, id, k).await.unwrap();
        for piece in plain.chunks(10_000) {
            w.write(piece).await.unwrap();
        }
        w.finish().await.unwrap()
    }

    async fn read_all(
        dir: &Path,
        id: &str,
        wrapped: &[u8],
        k: &MasterKey,
    ) -> Result<Vec<u8>, BlobError> {
        let mut r = BlobReader::open(dir, id, wrapped, k).await?;
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn round_trips_at_every_chunk_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key();
        for (i, n) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]
            .into_iter()
            .enumerate()
        {
            let id = format!("b-{i}");
            let plain = data(n);
            let s = seal(tmp.path(), &id, &k, &plain).await;
            assert_eq!(s.size, n as u64);
            assert_eq!(
                s.sha256,
                hex::encode(digest::digest(&digest::SHA256, &plain))
            );
            assert_eq!(
                read_all(tmp.path(), &id, &s.wrapped_key, &k).await.unwrap(),
                plain,
                "{n}"
            );
            let file = std::fs::read(path(tmp.path(), &id)).unwrap();
            assert_eq!(file.len(), HEADER + n + (n / CHUNK + 1) * TAG);
            assert!(!tmp.path().join(format!("{id}.tmp")).exists());
        }
    }

    #[tokio::test]
    async fn detects_tamper_truncation_reorder_swap_and_wrong_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let k = key();
        let plain = data(3 * CHUNK + 100);
        let s = seal(dir, "b-a", &k, &plain).await;
        let other = seal(dir, "b-b", &k, &plain).await;
        let good = std::fs::read(path(dir, "b-a")).unwrap();
        let sealed = CHUNK + TAG;
        let write = |bytes: &[u8]| std::fs::write(path(dir, "b-a"), bytes).unwrap();
        let fails = || async { read_all(dir, "b-a", &s.wrapped_key, &k).await.is_err() };
        // A flipped bit.
        let mut bad = good.clone();
        bad[HEADER + sealed + 5] ^= 1;
        write(&bad);
        assert!(fails().await, "tamper");
        // Cut at a chunk boundary, and in the middle of one.
        write(&good[..HEADER + 2 * sealed]);
        assert!(fails().await, "truncated at a boundary");
        write(&good[..good.len() - 1]);
        assert!(fails().await, "truncated in a chunk");
        // Two chunks swapped.
        let mut swapped = good[..HEADER].to_vec();
        swapped.extend_from_slice(&good[HEADER + sealed..HEADER + 2 * sealed]);
        swapped.extend_from_slice(&good[HEADER..HEADER + sealed]);
        swapped.extend_from_slice(&good[HEADER + 2 * sealed..]);
        write(&swapped);
        assert!(fails().await, "reordered");
        // Another blob's file under this id.
        write(&std::fs::read(path(dir, "b-b")).unwrap());
        assert!(fails().await, "swapped file");
        write(&good);
        assert_eq!(
            read_all(dir, "b-a", &s.wrapped_key, &k).await.unwrap(),
            plain
        );
        // Another blob's key, another master key.
        assert!(read_all(dir, "b-a", &other.wrapped_key, &k).await.is_err());
        assert!(matches!(
            BlobReader::open(dir, "b-a", &s.wrapped_key, &key()).await,
            Err(BlobError::Key(KeyError::Open))
        ));
    }

    #[tokio::test]
    async fn an_unfinished_blob_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = BlobWriter::create(tmp.path(), "b-x", &key()).await.unwrap();
        w.write(&data(CHUNK * 2)).await.unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
