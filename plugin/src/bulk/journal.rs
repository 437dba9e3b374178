//! The journal of one bulk run: what became of each row, so that a run started again never sends a
//! row twice. One line per state change, appended and flushed to disk (`fsync`) before the run goes
//! on: `sending` before the message is submitted (so before its final dot), then `sent` (accepted or
//! held) or `refused` after Stalwart's reply. A row whose last state is `sending` was cut off between
//! the two: Stalwart may have it (uncertain). Rows are named by a key, the SHA-256 of the template, the
//! address and the row's fields — never by their content: the journal holds no address, number or
//! value. The file is private (0600). A last line cut off by a crash is ignored.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
};

use super::validate::Recipient;

/// A row's key: hex SHA-256 of (template, address, every column name and value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(pub String);

impl Key {
    pub fn of(template_sha256: &[u8; 32], row: &Recipient) -> Key {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"nta7516-bulk-v1\0");
        ctx.update(template_sha256);
        ctx.update(row.email.as_bytes());
        ctx.update(b"\0");
        let mut columns: Vec<(&String, &String)> = row.values.iter().collect();
        columns.sort();
        for (name, value) in columns {
            ctx.update(name.as_bytes());
            ctx.update(b"\0");
            ctx.update(value.as_bytes());
            ctx.update(b"\0");
        }
        Key(hex::encode(ctx.finish()))
    }
}

/// The last recorded state of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Submission started, with the message's Date (unix seconds): a re-submission uses the same one.
    Sending { date: i64 },
    /// Stalwart accepted it for delivery now.
    Accepted,
    /// The gateway holds it until the recipient verifies (2FA).
    Held,
    /// Not accepted (the reply code); may be tried again.
    Refused { code: u16 },
}

impl State {
    fn line(self, key: &Key) -> String {
        match self {
            State::Sending { date } => format!("sending {} {date}\n", key.0),
            State::Accepted => format!("sent {} accepted\n", key.0),
            State::Held => format!("sent {} held\n", key.0),
            State::Refused { code } => format!("refused {} {code}\n", key.0),
        }
    }

    fn parse(line: &str) -> Option<(Key, State)> {
        let mut words = line.split(' ');
        let (kind, key, arg) = (words.next()?, words.next()?, words.next()?);
        if words.next().is_some() || key.len() != 64 {
            return None;
        }
        let state = match (kind, arg) {
            ("sending", date) => State::Sending {
                date: date.parse().ok()?,
            },
            ("sent", "accepted") => State::Accepted,
            ("sent", "held") => State::Held,
            ("refused", code) => State::Refused {
                code: code.parse().ok()?,
            },
            _ => return None,
        };
        Some((Key(key.to_string()), state))
    }

    /// Whether the row went out (never send it again).
    pub fn is_sent(self) -> bool {
        matches!(self, State::Accepted | State::Held)
    }
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    states: HashMap<Key, State>,
}

impl Journal {
    /// Opens (or creates, 0600) the journal and reads the states recorded so far.
    pub fn open(path: &Path) -> Result<Journal, String> {
        let err = |e: std::io::Error| format!("journal {}: {e}", path.display());
        let existed = path.exists();
        crate::fsperm::create_private_file(path).map_err(err)?;
        if let Some(mode) = crate::fsperm::too_open(path, crate::fsperm::Kind::File) {
            eprintln!(
                "warning: journal {} has mode {mode:o}; run chmod 600 on it",
                path.display()
            );
        }
        if !existed {
            sync_parent(path).map_err(err)?;
        }
        let text = std::fs::read_to_string(path).map_err(err)?;
        let mut states = HashMap::new();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        for (i, line) in complete.lines().enumerate() {
            let (key, state) = State::parse(line).ok_or_else(|| {
                format!(
                    "journal {} line {}: not a journal line ({line:?}); was another file given as --journal?",
                    path.display(),
                    i + 1
                )
            })?;
            states.insert(key, state);
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(err)?;
        if complete.len() + usize::from(!complete.is_empty()) != text.len() {
            // A line cut off by a crash: end it, so the next record starts on a line of its own.
            (&file).write_all(b"\n").map_err(err)?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            states,
        })
    }

    pub fn state(&self, key: &Key) -> Option<State> {
        self.states.get(key).copied()
    }

    /// Appends a state and waits until it is on disk.
    pub fn record(&mut self, key: &Key, state: State) -> Result<(), String> {
        let err = |e: std::io::Error| format!("journal {}: {e}", self.path.display());
        self.file
            .write_all(state.line(key).as_bytes())
            .map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.states.insert(key.clone(), state);
        Ok(())
    }
}

/// Makes a new file's directory entry durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `people.csv` → `people.csv.journal`.
pub fn default_path(csv: &Path) -> PathBuf {
    let mut name = csv.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}
