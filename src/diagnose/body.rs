//! Changes made to a body between signing and checking, and how to undo
//! them.

use std::fmt;

use super::SkipReason;
use super::budget::Budget;

pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many times larger than the received body JSON laid out anew may
/// grow (pretty-printing deeply nested JSON multiplies it) before that
/// guess is given up.
const MAX_REFORMAT_GROWTH: usize = 8;

/// A body this small may always be laid out anew in full.
const MIN_REFORMAT_LIMIT: usize = 4 * 1024;

/// A change made to a body after it was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyChange {
    /// A trailing newline was added (an editor, `echo`, a logging proxy).
    TrailingNewlineAdded,
    /// The trailing newline was removed (a framework that trims bodies).
    TrailingNewlineRemoved,
    /// LF line endings became CRLF (a Windows tool or a text-mode transfer).
    LfBecameCrlf,
    /// CRLF line endings became LF.
    CrlfBecameLf,
    /// Compact JSON was re-serialized in another layout (pretty-printed,
    /// spaced): the sender signed the compact form.
    JsonReformattedFromCompact,
    /// JSON pretty-printed with two spaces was re-serialized: the sender
    /// signed the pretty form.
    JsonReformattedFromPretty,
    /// JSON with `", "` and `": "` separators (Python's `json.dumps`
    /// default) was re-serialized: the sender signed that form.
    JsonReformattedFromSpaced,
    /// A UTF-8 byte order mark was added in front.
    BomAdded,
    /// The UTF-8 byte order mark in front was removed.
    BomRemoved,
}

impl BodyChange {
    /// Every change that is tried, in the order tried.
    pub const ALL: [Self; 9] = [
        Self::TrailingNewlineAdded,
        Self::TrailingNewlineRemoved,
        Self::LfBecameCrlf,
        Self::CrlfBecameLf,
        Self::JsonReformattedFromCompact,
        Self::JsonReformattedFromPretty,
        Self::JsonReformattedFromSpaced,
        Self::BomAdded,
        Self::BomRemoved,
    ];

    /// The body as it was before this change, if the change can have
    /// happened to `received` (`None` otherwise). Laying JSON out anew is
    /// given up (`None`) once the result would be more than eight times as
    /// large as `received` (and over 4 KiB).
    pub fn undo(self, received: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::TrailingNewlineAdded => received
                .strip_suffix(b"\r\n")
                .or_else(|| received.strip_suffix(b"\n"))
                .map(<[u8]>::to_vec),
            Self::TrailingNewlineRemoved => {
                (!received.ends_with(b"\n")).then(|| [received, b"\n"].concat())
            }
            Self::LfBecameCrlf => contains(received, b"\r\n").then(|| replace_crlf(received)),
            Self::CrlfBecameLf => (received.contains(&b'\n') && !received.contains(&b'\r'))
                .then(|| replace_lf(received)),
            Self::JsonReformattedFromCompact => reformat_json(received, JsonLayout::Compact),
            Self::JsonReformattedFromPretty => reformat_json(received, JsonLayout::Pretty),
            Self::JsonReformattedFromSpaced => reformat_json(received, JsonLayout::Spaced),
            Self::BomAdded => received.strip_prefix(UTF8_BOM).map(<[u8]>::to_vec),
            Self::BomRemoved => {
                (!received.starts_with(UTF8_BOM)).then(|| [UTF8_BOM, received].concat())
            }
        }
        .filter(|before| before != received)
    }
}

impl fmt::Display for BodyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TrailingNewlineAdded => "a trailing newline was added after signing",
            Self::TrailingNewlineRemoved => "the trailing newline was removed after signing",
            Self::LfBecameCrlf => "LF line endings were turned into CRLF after signing",
            Self::CrlfBecameLf => "CRLF line endings were turned into LF after signing",
            Self::JsonReformattedFromCompact => {
                "the JSON was signed compact and re-serialized in another layout after signing"
            }
            Self::JsonReformattedFromPretty => {
                "the JSON was signed pretty-printed (2 spaces) and re-serialized in another layout after signing"
            }
            Self::JsonReformattedFromSpaced => {
                "the JSON was signed with `, ` and `: ` separators (Python's json.dumps) and re-serialized after signing"
            }
            Self::BomAdded => "a UTF-8 byte order mark was added in front after signing",
            Self::BomRemoved => "the UTF-8 byte order mark in front was removed after signing",
        })
    }
}

/// The change, or pair of changes, whose undoing makes the signature match;
/// `verifies` charges `budget` for each candidate it checks.
///
/// # Errors
///
/// [`SkipReason::BudgetSpent`] when the budget ran out first.
pub(super) fn find_body_changes(
    body: &[u8],
    budget: &mut Budget,
    verifies: impl Fn(&[u8], &mut Budget) -> Result<bool, SkipReason>,
) -> Result<Option<Vec<BodyChange>>, SkipReason> {
    for change in BodyChange::ALL {
        if let Some(before) = change.undo(body) {
            if verifies(&before, budget)? {
                return Ok(Some(vec![change]));
            }
        }
    }
    // Two changes in a row: the last one made is undone first.
    for last in BodyChange::ALL {
        let Some(middle) = last.undo(body) else {
            continue;
        };
        budget.charge(middle.len())?;
        for first in BodyChange::ALL {
            if first == last {
                continue;
            }
            if let Some(before) = first.undo(&middle) {
                if before != body && verifies(&before, budget)? {
                    return Ok(Some(vec![first, last]));
                }
            }
        }
    }
    Ok(None)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

fn replace_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 16);
    for &b in body {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonLayout {
    /// No whitespace at all (`JSON.stringify(x)`, `serde_json::to_vec`).
    Compact,
    /// Two-space indentation (`JSON.stringify(x, null, 2)`,
    /// `serde_json::to_vec_pretty`, `json.dumps(x, indent=2)`).
    Pretty,
    /// One line with `", "` and `": "` (`json.dumps(x)` in Python).
    Spaced,
}

/// Lays out valid JSON anew without touching its tokens: key order, number
/// spelling and string escapes stay exactly as they were. `None` when the
/// body is not JSON, or when the new layout would grow past
/// [`reformat_limit`] (pretty-printing deeply nested JSON can multiply its
/// size a hundredfold).
fn reformat_json(body: &[u8], layout: JsonLayout) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let limit = reformat_limit(body.len());
    let mut out = Vec::with_capacity((body.len() + body.len() / 2).min(limit));
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut depth = 0usize;
    let mut just_opened = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                if just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                out.push(b);
                depth += 1;
                just_opened = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if !just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                just_opened = false;
                out.push(b);
            }
            b',' => {
                out.push(b',');
                match layout {
                    JsonLayout::Pretty => newline(&mut out, depth),
                    JsonLayout::Spaced => out.push(b' '),
                    JsonLayout::Compact => {}
                }
            }
            b':' => {
                out.push(b':');
                if layout != JsonLayout::Compact {
                    out.push(b' ');
                }
            }
            _ => {
                if just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                just_opened = false;
                if b == b'"' {
                    let start = i;
                    i += 1;
                    while i < body.len() {
                        match body[i] {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    let end = (i + 1).min(body.len());
                    out.extend_from_slice(&body[start..end]);
                } else {
                    out.push(b);
                }
            }
        }
        if out.len() > limit {
            return None;
        }
        i += 1;
    }
    Some(out)
}

/// The most bytes JSON of `len` bytes may take once laid out anew.
fn reformat_limit(len: usize) -> usize {
    len.saturating_mul(MAX_REFORMAT_GROWTH)
        .max(MIN_REFORMAT_LIMIT)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::diagnose::tests::NOW;
    use crate::diagnose::{Finding, GUESS_BUDGET, MAX_BODY_FOR_CHANGES, diagnose};
    use crate::{Message, Scheme, SecretSet};

    #[test]
    fn reformat_matches_serde_json_layouts() {
        let value = serde_json::json!({
            "a": [1, 2, {"b": null, "c": "x,y: \"z\""}],
            "d": {},
            "e": [],
            "f": [[]],
        });
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(reformat_json(&compact, JsonLayout::Pretty).unwrap(), pretty);
        assert_eq!(
            reformat_json(&pretty, JsonLayout::Compact).unwrap(),
            compact
        );
        assert_eq!(
            reformat_json(br#"{"a":[1,{"b":"c"}]}"#, JsonLayout::Spaced).unwrap(),
            br#"{"a": [1, {"b": "c"}]}"#
        );
        assert!(reformat_json(b"not json", JsonLayout::Compact).is_none());
    }

    /// JSON nested `depth` deep around a flat array of ones, `len` bytes.
    pub(in crate::diagnose) fn deep_json(depth: usize, len: usize) -> Vec<u8> {
        let mut body = vec![b'['; depth];
        while body.len() + depth + 2 < len {
            body.extend_from_slice(b"1,");
        }
        body.push(b'1');
        body.extend(std::iter::repeat_n(b']', depth));
        body
    }

    #[test]
    fn reformatting_stops_once_it_outgrows_the_body() {
        // Pretty-printed, every `1` would sit on its own line behind 252
        // spaces: over 100 times the body's size.
        let body = deep_json(126, 60 * 1024);
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok());
        assert!(reformat_json(&body, JsonLayout::Pretty).is_none());
        assert!(BodyChange::JsonReformattedFromPretty.undo(&body).is_none());
        // Compact and spaced layouts stay within the bound and are built.
        let spaced = reformat_json(&body, JsonLayout::Spaced).unwrap();
        assert!(spaced.len() <= reformat_limit(body.len()));
        // Small bodies are laid out in full, however deep.
        let small = deep_json(20, 100);
        let pretty = reformat_json(&small, JsonLayout::Pretty).unwrap();
        assert!(pretty.len() > 8 * small.len());
    }

    /// Compact JSON with `rows` small objects, keys in sorted order (as
    /// `serde_json::Value` writes them back), and the same laid out pretty
    /// behind a byte order mark: a pair of changes, about 60 KiB.
    pub(in crate::diagnose) fn rows_signed_and_received(rows: usize) -> (Vec<u8>, Vec<u8>) {
        let rows: Vec<String> = (0..rows)
            .map(|i| format!(r#"{{"region":"r{i}","rows":{i}}}"#))
            .collect();
        let signed = format!(r#"{{"data":[{}],"event":"e"}}"#, rows.join(",")).into_bytes();
        let value: serde_json::Value = serde_json::from_slice(&signed).unwrap();
        let received = [UTF8_BOM, &serde_json::to_vec_pretty(&value).unwrap()].concat();
        assert!(
            (MAX_BODY_FOR_CHANGES / 2..=MAX_BODY_FOR_CHANGES).contains(&received.len()),
            "{}",
            received.len()
        );
        (signed, received)
    }

    #[test]
    fn a_change_to_a_body_near_the_size_limit_is_still_found() {
        let secrets = SecretSet::single("s").unwrap();
        let scheme = Scheme::native();
        let (signed, received) = rows_signed_and_received(700);
        let headers = scheme
            .sign(&secrets, &Message::new("e", NOW, &signed))
            .unwrap();
        let d = diagnose(&scheme, &secrets, &headers, &received, NOW);
        assert_eq!(
            d.findings(),
            &[Finding::BodyChanged {
                changes: vec![BodyChange::JsonReformattedFromCompact, BodyChange::BomAdded],
            }],
            "{d}"
        );
        assert!(d.guessed_bytes <= GUESS_BUDGET, "{}", d.guessed_bytes);
    }

    #[test]
    fn pairs_of_changes_are_found() {
        let secrets = SecretSet::single("s").unwrap();
        let scheme = Scheme::github();
        let signed = b"line one\nline two\n";
        let headers = scheme
            .sign(&secrets, &Message::new("d", NOW, signed))
            .unwrap();
        let received = [UTF8_BOM, &replace_lf(signed)].concat();
        let d = diagnose(&scheme, &secrets, &headers, &received, NOW);
        assert!(
            d.findings().iter().any(|f| matches!(
                f,
                Finding::BodyChanged { changes } if changes.len() == 2
                    && changes.contains(&BodyChange::BomAdded)
                    && changes.contains(&BodyChange::LfBecameCrlf)
            )),
            "{d}"
        );
    }
}
