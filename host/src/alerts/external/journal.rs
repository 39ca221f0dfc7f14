//! The intake journal: files beside the database where received alerts are durable before
//! their senders hear back, without a database write per request.
//!
//! Senders re-post their firing alerts all the time (Prometheus every evaluation), and an
//! update in place in the database rewrites a whole page for each alert, wherever its row
//! is: a request of 100 alerts wrote about 100 pages. Appended to a journal, the same
//! alerts are a few dozen kilobytes written in one place and synced once.
//!
//! Files are numbered (`external-alerts.<n>.journal`) and written one after the other; the
//! [writer](super::writer) starts the next file when it hands the last one's writes to the
//! database, and deletes a file once they are committed there.
//!
//! A line is one write, its fields separated by tabs: `U`, the fingerprint, start, end and
//! last receipt (ms), `1` if the end is the resolve timeout (else `0`), the generator URL (a
//! JSON string, or `null`), then the labels and the annotations (JSON objects); or `D` and
//! the fingerprint of an alert forgotten. JSON escapes tabs and line breaks, so no field
//! holds one. A round is synced before the next is written, so a crash can tear only the
//! last round, which no sender was told was stored: reading stops at the first line that is
//! not whole.

use std::fs::File;
use std::io::{self, Seek, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ExternalAlert, Write, from_json};

/// The journal file being written.
pub(super) struct Journal {
    dir: PathBuf,
    number: u64,
    file: File,
    /// Bytes written to `file`.
    bytes: u64,
    torn: bool,
    line: Vec<u8>,
}

impl Journal {
    /// Starts a new file numbered `number` in `dir`.
    pub(super) fn start(dir: &Path, number: u64) -> io::Result<Journal> {
        Ok(Journal {
            file: create(dir, number)?,
            dir: dir.to_path_buf(),
            number,
            bytes: 0,
            torn: false,
            line: Vec::with_capacity(64 << 10),
        })
    }

    /// Encodes a round for [`Journal::write`]; returns its bytes.
    pub(super) fn encode<'w>(&mut self, writes: impl Iterator<Item = &'w Write>) -> u64 {
        self.line.clear();
        for w in writes {
            encode(w, &mut self.line);
        }
        self.line.len() as u64
    }

    /// Appends the round last encoded and syncs it to the disk. What a failed write put in
    /// the file is cut off again, so that the rounds after it are read back; if that fails
    /// too, the file is [`Journal::torn`] and no more is written to it.
    pub(super) fn write(&mut self) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::other("the journal file is torn"));
        }
        let written = self
            .file
            .write_all(&self.line)
            .and_then(|()| self.file.sync_data());
        if written.is_err() {
            let cut = self
                .file
                .set_len(self.bytes)
                .and_then(|()| self.file.seek(io::SeekFrom::Start(self.bytes)));
            self.torn = cut.is_err();
            return written;
        }
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    /// A round encoded and written, the writer's two steps in one.
    #[cfg(test)]
    pub(super) fn append<'w>(&mut self, writes: impl Iterator<Item = &'w Write>) -> io::Result<()> {
        self.encode(writes);
        self.write()
    }

    /// Empties the current file, whose writes are in the database.
    pub(super) fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.file.sync_data()?;
        self.bytes = 0;
        self.torn = false;
        Ok(())
    }

    /// Whether a failed write could not be cut off: the rounds in the file are whole, but
    /// the next must go to a new file.
    pub(super) fn torn(&self) -> bool {
        self.torn
    }

    /// Bytes in the current file.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The current file.
    pub(super) fn path(&self) -> PathBuf {
        path(&self.dir, self.number)
    }

    /// Goes on in a new file; returns the path of the finished one.
    pub(super) fn next_file(&mut self) -> io::Result<PathBuf> {
        let file = create(&self.dir, self.number + 1)?;
        let finished = self.path();
        self.number += 1;
        self.file = file;
        self.bytes = 0;
        self.torn = false;
        Ok(finished)
    }
}

/// The journal files in `dir`, oldest first, with their numbers.
pub(super) fn files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("external-alerts."))
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = number {
            found.push((n, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// What the journal files in a directory hold.
pub(super) struct Left {
    /// The files, oldest first, with their numbers.
    pub files: Vec<(u64, PathBuf)>,
    /// Their writes, in order.
    pub writes: Vec<Write>,
}

/// Reads the journal files in `dir`. A file deleted meanwhile is left out: its writes were
/// in the database.
pub(super) fn read_all(dir: &Path) -> io::Result<Left> {
    let mut writes = Vec::new();
    let files = files(dir)?;
    for (_, file) in &files {
        match read(file) {
            Ok(w) => writes.extend(w),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Left { files, writes })
}

/// The writes of a journal file, up to the first line that is not whole.
fn read(path: &Path) -> io::Result<Vec<Write>> {
    let bytes = std::fs::read(path)?;
    let mut writes = Vec::new();
    // The part after the last line break was being written when the process stopped.
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for (i, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line).ok().and_then(decode) {
            Some(w) => writes.push(w),
            None => {
                tracing::warn!(
                    file = %path.display(),
                    line = i + 1,
                    "journal line torn (the process stopped while writing it): the rest of the file is left out",
                );
                break;
            }
        }
    }
    Ok(writes)
}

fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("external-alerts.{number}.journal"))
}

/// Creates a journal file, and syncs the directory so that the file is found after a crash.
fn create(dir: &Path, number: u64) -> io::Result<File> {
    let file = File::create_new(path(dir, number))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn encode(w: &Write, out: &mut Vec<u8>) {
    match w {
        Write::Upsert(a) => {
            // Writing to a Vec cannot fail.
            let _ = write!(
                out,
                "U\t{}\t{}\t{}\t{}\t{}\t",
                a.fingerprint,
                a.starts_at,
                a.ends_at,
                a.updated_at,
                u8::from(a.timeout)
            );
            let _ = serde_json::to_writer(&mut *out, &a.generator_url);
            out.push(b'\t');
            out.extend_from_slice(a.labels_json.as_bytes());
            out.push(b'\t');
            out.extend_from_slice(a.annotations_json.as_bytes());
        }
        Write::Delete(fp) => {
            let _ = write!(out, "D\t{fp}");
        }
    }
    out.push(b'\n');
}

fn decode(line: &str) -> Option<Write> {
    let mut fields = line.split('\t');
    let mut next = || fields.next();
    match next()? {
        "D" => Some(Write::Delete(next()?.parse().ok()?)),
        "U" => {
            let fingerprint = next()?.parse().ok()?;
            let (starts_at, ends_at, updated_at) = (
                next()?.parse().ok()?,
                next()?.parse().ok()?,
                next()?.parse().ok()?,
            );
            let timeout = match next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            let generator_url: Option<String> = serde_json::from_str(next()?).ok()?;
            let (labels_json, annotations_json): (Arc<str>, Arc<str>) =
                (next()?.into(), next()?.into());
            // A torn line whose cut fell inside the annotations is not a JSON object.
            serde_json::from_str::<serde::de::IgnoredAny>(&annotations_json).ok()?;
            Some(Write::Upsert(Arc::new(ExternalAlert {
                fingerprint,
                labels: from_json(&labels_json).with_shared_strings(),
                annotations: from_json(&annotations_json),
                labels_json,
                annotations_json,
                starts_at,
                ends_at,
                updated_at,
                generator_url,
                timeout,
            })))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn alert(name: &str, url: Option<&str>) -> Arc<ExternalAlert> {
        let labels = Labels::from_pairs([("alertname", name), ("tab", "a\tb\nc")]);
        let annotations = Labels::from_pairs([("summary", "quote \" and \\")]);
        Arc::new(ExternalAlert {
            fingerprint: labels.fingerprint(),
            labels_json: serde_json::to_string(&labels).unwrap().into(),
            annotations_json: serde_json::to_string(&annotations).unwrap().into(),
            labels: labels.with_shared_strings(),
            annotations,
            starts_at: -5,
            ends_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_001,
            generator_url: url.map(String::from),
            timeout: true,
        })
    }

    fn upserted(w: &Write) -> &ExternalAlert {
        match w {
            Write::Upsert(a) => a,
            Write::Delete(fp) => panic!("a deletion of {fp}"),
        }
    }

    #[test]
    fn writes_read_back_as_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::start(dir.path(), 7).unwrap();
        let (a, b) = (
            alert("A", Some("http://p/graph?g0.expr=up\t")),
            alert("B", None),
        );
        j.append([Write::Upsert(a.clone()), Write::Delete(42)].iter())
            .unwrap();
        j.append([Write::Upsert(b.clone())].iter()).unwrap();
        let finished = j.next_file().unwrap();
        assert_eq!(
            files(dir.path()).unwrap(),
            [(7, finished.clone()), (8, path(dir.path(), 8))]
        );
        let read = read(&finished).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(upserted(&read[0]), &*a);
        assert!(matches!(read[1], Write::Delete(42)));
        assert_eq!(upserted(&read[2]), &*b);
    }

    #[test]
    fn a_torn_last_round_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::start(dir.path(), 0).unwrap();
        j.append([Write::Upsert(alert("Kept", None))].iter())
            .unwrap();
        j.append([Write::Upsert(alert("Torn", None))].iter())
            .unwrap();
        let file = j.next_file().unwrap();
        let whole = std::fs::read(&file).unwrap();
        let first = whole.iter().position(|&b| b == b'\n').unwrap() + 1;
        // Cut anywhere in the second line, with or without its line break.
        for cut in [first + 1, first + 20, whole.len() - 3, whole.len() - 1] {
            std::fs::write(&file, &whole[..cut]).unwrap();
            let read = read(&file).unwrap();
            assert_eq!(read.len(), 1, "cut at {cut}");
            assert_eq!(upserted(&read[0]).labels.get("alertname"), Some("Kept"));
        }
        // A cut that keeps a line break but loses the end of the annotations.
        let mut torn = whole[..whole.len() - 3].to_vec();
        torn.push(b'\n');
        std::fs::write(&file, &torn).unwrap();
        assert_eq!(read(&file).unwrap().len(), 1);
    }
}
