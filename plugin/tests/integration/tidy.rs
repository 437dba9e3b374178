//! Tidy checks: the architecture's invariants (ARCHITECTURE.md) as tests over the source tree, so a change
//! that breaks one fails CI instead of waiting for a reviewer to count.
//!
//! - no function outside tests is longer than [`MAX_FN_LINES`] lines;
//! - SQL lives only in `plugin/src/store/` (no `sqlx::query*` anywhere else in non-test code);
//! - the store is the bottom layer of the gateway: it imports none of the modules that call it;
//! - `admin` and `http` do not import each other's routers (shared HTTP bits are leaf modules).
//!
//! Function lengths are counted by matching braces on the text with comments, strings and character
//! literals blanked out; `#[cfg(test)]` modules and the `tests/`, `benches/`, `testkit/` folders are
//! skipped.

use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 120;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every non-test `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "tests" | "benches" | "testkit" | "target" | "fuzz"
                ) && !name.starts_with('.')
                {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The source with comments, string literals and character literals replaced by spaces (newlines kept),
/// so that braces and keywords inside them do not count.
fn blank_literals(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, part: &[u8]| {
        out.extend(part.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }))
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            i + find(rest, 2, b"*/").map_or(rest.len(), |j| j + 2)
        } else if let Some(hashes) = raw_string_start(rest) {
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i + find(rest, hashes + 2, &close).map_or(rest.len(), |j| j + close.len())
        } else if rest[0] == b'"' && !ident_before(b, i) {
            i + string_end(rest)
        } else if rest[0] == b'\'' {
            i + char_literal_len(rest)
        } else {
            i + 1
        };
        if end == i + 1 && !matches!(rest[0], b'"' | b'\'') {
            out.push(rest[0]);
        } else {
            blank(&mut out, &b[i..end]);
        }
        i = end;
    }
    String::from_utf8(out).unwrap()
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..=hay.len().saturating_sub(needle.len())).find(|&j| hay[j..].starts_with(needle))
}

/// `r"`, `r#"`, `br"` …: the number of hashes when a raw string starts here.
fn raw_string_start(rest: &[u8]) -> Option<usize> {
    let r = if rest.starts_with(b"br") { 2 } else { 1 };
    if rest.first() != Some(&b'r') && r == 1 {
        return None;
    }
    let hashes = rest[r..].iter().take_while(|&&c| c == b'#').count();
    (rest.get(r + hashes) == Some(&b'"'))
        .then_some(hashes)
        .map(|h| h + r - 1)
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') && b[i - 1] != b'b'
}

/// Length of a `"…"` literal with escapes.
fn string_end(rest: &[u8]) -> usize {
    let mut j = 1;
    while j < rest.len() && rest[j] != b'"' {
        j += if rest[j] == b'\\' { 2 } else { 1 };
    }
    (j + 1).min(rest.len())
}

/// `'x'`, `'\n'`, `'\u{7b}'` are literals; `'a` (a lifetime or label) is not.
fn char_literal_len(rest: &[u8]) -> usize {
    if rest.len() >= 3 && rest[1] == b'\\' {
        if let Some(j) = rest.iter().skip(2).position(|&c| c == b'\'') {
            if j < 10 {
                return j + 3;
            }
        }
    }
    let len = std::str::from_utf8(&rest[1..rest.len().min(5)])
        .ok()
        .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(2)]).ok())
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8);
    if rest.get(1 + len) == Some(&b'\'') {
        len + 2
    } else {
        1
    }
}

/// Byte ranges of `#[cfg(test)] mod … { … }` blocks.
fn test_modules(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = s[from..].find("#[cfg(test)]") {
        let start = from + at;
        let after = s[start + 12..].trim_start();
        let after = after.strip_prefix("pub ").unwrap_or(after);
        if after.starts_with("mod ") {
            if let Some(open) = s[start..].find('{') {
                out.push((start, matching_brace(s, start + open + 1)));
            }
        }
        from = start + 12;
    }
    out
}

/// The index just past the brace that closes the one opened before `from`.
fn matching_brace(s: &str, from: usize) -> usize {
    let mut depth = 1;
    for (j, c) in s[from..].bytes().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return from + j + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// (lines, line number, name) of every function with a body outside test modules.
fn functions(s: &str) -> Vec<(usize, usize, String)> {
    let tests = test_modules(s);
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(at) = s[from..].find("fn ") {
        let start = from + at;
        from = start + 3;
        let word_start =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !word_start || tests.iter().any(|(a, b)| (*a..*b).contains(&start)) {
            continue;
        }
        let name: String = s[start + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the body's `{`, or at `;` for a declaration without a body.
        let Some(end_sig) = s[start..].find(['{', ';']) else {
            continue;
        };
        if name.is_empty() || bytes[start + end_sig] == b';' {
            continue;
        }
        let end = matching_brace(s, start + end_sig + 1);
        let lines = s[start..end].matches('\n').count() + 1;
        out.push((lines, s[..start].matches('\n').count() + 1, name));
    }
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn no_function_over_the_limit() {
    let mut over = Vec::new();
    let mut counted = 0;
    for krate in ["plugin", "smarttls", "sieve"] {
        for path in sources(&workspace().join(krate)) {
            let text = blank_literals(&std::fs::read_to_string(&path).unwrap());
            for (lines, line, name) in functions(&text) {
                counted += 1;
                if lines > MAX_FN_LINES {
                    over.push(format!("{}:{line} {name}: {lines} lines", relative(&path)));
                }
            }
        }
    }
    // The counter must see the code at all (a broken walk would pass vacuously).
    assert!(counted > 500, "only {counted} functions found");
    assert!(
        over.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them along their jobs):\n{}",
        over.join("\n")
    );
}

#[test]
fn the_counter_counts() {
    let src = "fn a() {\n let s = \"}\"; // }\n let c = '}';\n let r = r#\"}\"#;\n}\n\
               #[cfg(test)]\nmod tests {\n fn hidden() {\n }\n}\nfn b<'a>(x: &'a str) -> &'a str {\n x\n}\n";
    let found = functions(&blank_literals(src));
    assert_eq!(
        found,
        vec![(5, 1, "a".to_string()), (3, 11, "b".to_string())]
    );
}

#[test]
fn sql_only_in_the_store() {
    let store = workspace().join("plugin/src/store");
    let mut found = Vec::new();
    let mut files = 0;
    for path in sources(&workspace().join("plugin/src")) {
        files += 1;
        if path.starts_with(&store) {
            continue;
        }
        let text = blank_literals(&std::fs::read_to_string(&path).unwrap());
        let tests = test_modules(&text);
        for (at, _) in text.match_indices("sqlx::query") {
            if !tests.iter().any(|(a, b)| (*a..*b).contains(&at)) {
                let line = text[..at].matches('\n').count() + 1;
                found.push(format!("{}:{line}", relative(&path)));
            }
        }
    }
    assert!(files > 40, "only {files} files under plugin/src");
    assert!(
        found.is_empty(),
        "SQL outside plugin/src/store/ (add a typed store function instead):\n{}",
        found.join("\n")
    );
}

/// The `crate::` paths a file refers to, groups expanded: `use crate::{a::B, c::{d, e::F}}` gives `a::B`,
/// `c::d` and `c::e::F`; `crate::x::y::Z` gives `x::y::Z`. Test modules are left out.
fn crate_paths(text: &str) -> Vec<String> {
    let tests = test_modules(text);
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if !tests.iter().any(|(a, b)| (*a..*b).contains(&at)) {
            expand("", &text[at + "crate::".len()..], &mut out);
        }
    }
    out.retain(|p| !p.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Reads one path at the start of `text` (`a::b::C` or `a::{…}`), pushing every full path under `prefix`.
fn expand(prefix: &str, text: &str, out: &mut Vec<String>) {
    let path: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let full = format!("{prefix}{path}");
    let rest = &text[path.len()..];
    if !rest.starts_with('{') {
        out.push(full.trim_end_matches(':').to_string());
        return;
    }
    let end = matching_brace(rest, 1) - 1;
    let mut depth = 0;
    let mut item = 1;
    for (j, c) in rest[1..end].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&full, rest[item..].trim_start(), out);
                item = j + 2;
            }
            _ => {}
        }
    }
    let last = rest[item..end].trim_start();
    if !last.is_empty() {
        expand(&full, last, out);
    }
}

/// Whether `path` (`a::b::C`) is `prefix` or below it, segment by segment.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}::"))
}

/// Imports a folder must not make (its callers), with the leaf modules below them that it may use.
struct Layer {
    dir: &'static str,
    forbidden: &'static [&'static str],
    except: &'static [&'static str],
}

const LAYERS: &[Layer] = &[
    // The store is the bottom of the gateway: it may know the value types it stores (audit events,
    // decisions, sealed content, phone numbers), never the modules that call it.
    Layer {
        dir: "plugin/src/store",
        forbidden: &[
            "challenge",
            "hold",
            "portal",
            "submission",
            "inbound",
            "admin",
            "http",
            "doctor",
            "cli",
            "stalwart_submit",
        ],
        except: &[],
    },
    // Wire formats only: nothing of the gateway's own.
    Layer {
        dir: "plugin/src/stalwart",
        forbidden: &[
            "store",
            "policy",
            "submission",
            "inbound",
            "challenge",
            "hold",
            "portal",
            "admin",
            "http",
            "audit",
        ],
        except: &[],
    },
    // The pure decision: no storage, no I/O modules.
    Layer {
        dir: "plugin/src/policy",
        forbidden: &[
            "store",
            "submission",
            "inbound",
            "challenge",
            "hold",
            "portal",
            "admin",
            "http",
            "stalwart_submit",
        ],
        except: &[],
    },
    // Received mail has its own pipeline: it shares the policy, the store and the audit trail with
    // the submission hook, never the submission pipeline itself or the surfaces above it.
    Layer {
        dir: "plugin/src/inbound",
        forbidden: &[
            "submission",
            "challenge",
            "hold",
            "portal",
            "admin",
            "http",
            "stalwart_submit",
        ],
        except: &[],
    },
    // `bulk` is a mail client with a phone book: it submits through Stalwart (so through the hook
    // like any mail) and records numbers through the store; it never calls the hook pipeline, the
    // release worker or the HTTP surfaces itself.
    Layer {
        dir: "plugin/src/bulk",
        forbidden: &[
            "submission",
            "inbound",
            "hold",
            "portal",
            "http",
            "deployment",
        ],
        except: &[],
    },
    // Admin uses only the leaf HTTP modules; http/mod.rs mounts the admin router.
    Layer {
        dir: "plugin/src/admin",
        forbidden: &["http"],
        except: &["http::problem", "http::auth"],
    },
];

#[test]
fn layers_import_downwards() {
    let mut broken = Vec::new();
    for layer in LAYERS {
        let files = sources(&workspace().join(layer.dir));
        assert!(!files.is_empty(), "{} has no sources", layer.dir);
        for path in files {
            let text = blank_literals(&std::fs::read_to_string(&path).unwrap());
            for used in crate_paths(&text) {
                let bad = layer.forbidden.iter().any(|f| under(&used, f))
                    && !layer.except.iter().any(|e| under(&used, e));
                if bad {
                    broken.push(format!("{} uses crate::{used}", relative(&path)));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering of ARCHITECTURE.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_import_reader_reads() {
    let src = "use crate::{a::B, c, d::{e, f}};\nfn g() { crate::h::i(); }\n\
               #[cfg(test)]\nmod tests { use crate::hidden; }\n";
    assert_eq!(
        crate_paths(&blank_literals(src)),
        vec!["a::B", "c", "d::e", "d::f", "h::i"]
    );
}
