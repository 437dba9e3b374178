//! The journal of one bulk run: what became of each row, so that a run started again never sends a
//! row twice. One line per state change, appended and flushed to disk (`fsync`) before the run goes
//! on: `sending` before the message is submitted (so before its final dot), then `sent` (accepted or
//! held) or `refused` after Stalwart's reply. A row whose last state is `sending` was cut off between
//! the two: Stalwart may have it (uncertain). Rows are named by a key, the SHA-256 of the template, the
//! address and the row's fields — never by their content: the journal holds no address, number or
//! value. The file is private (0600). A last line cut off by a crash is removed.

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
        let whole = complete.len() + usize::from(!complete.is_empty());
        if whole != text.len() {
            // A line cut off by a crash (its state change never happened as far as we know): gone.
            file.set_len(whole as u64).map_err(err)?;
            file.sync_data().map_err(err)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv.journal");
        let (a, b) = (Key("a".repeat(64)), Key("b".repeat(64)));
        let mut j = Journal::open(&path).unwrap();
        j.record(
            &a,
            State::Sending {
                date: 1_700_000_000,
            },
        )
        .unwrap();
        j.record(&a, State::Held).unwrap();
        j.record(
            &b,
            State::Sending {
                date: 1_700_000_001,
            },
        )
        .unwrap();
        drop(j);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A crash in the middle of a line: that line is ignored, the file goes on after it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(format!("sent {} acc", b.0).as_bytes()).unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.state(&a), Some(State::Held));
        assert_eq!(
            j.state(&b),
            Some(State::Sending {
                date: 1_700_000_001
            })
        );
        j.record(&b, State::Refused { code: 550 }).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.state(&b), Some(State::Refused { code: 550 }));
        assert!(State::Held.is_sent() && State::Accepted.is_sent());
        assert!(!State::Refused { code: 451 }.is_sent());
    }

    #[test]
    fn another_file_is_not_taken_for_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "email;phone\na@x.test;+31612345678\n").unwrap();
        let e = Journal::open(&path).err().unwrap();
        assert!(e.contains("line 1: not a journal line"), "{e}");
        assert_eq!(
            default_path(Path::new("exports/people.csv")),
            Path::new("exports/people.csv.journal")
        );
    }
}
