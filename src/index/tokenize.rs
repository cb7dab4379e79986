//! Splitting file bytes into words, with their line and column.
//!
//! The contract fixes what a word is: a maximal run of characters that are
//! `char::is_alphanumeric()` or `_`, reading the bytes as UTF-8, where bytes
//! that are not valid UTF-8 separate words. A run longer than
//! [`MAX_WORD_BYTES`] bytes as it stands in the file is not a word at all.
//!
//! Almost every byte of source code and English prose is ASCII, so the scanner
//! classifies bytes with a 256-entry table and only decodes UTF-8 when it
//! meets a byte at or above 0x80. Words are handed to the caller already
//! lowercased, in a scratch buffer the scanner reuses, so the hot path
//! allocates nothing.

/// The longest run, in bytes as stored in the file, that is indexed.
pub const MAX_WORD_BYTES: usize = 64;

const SEPARATOR: u8 = 0;
const WORD: u8 = 1;
const NON_ASCII: u8 = 2;

/// Byte classes: ASCII letters, digits and `_` are word bytes, other ASCII
/// bytes separate words, bytes >= 0x80 need UTF-8 decoding.
static CLASS: [u8; 256] = {
    let mut table = [SEPARATOR; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        table[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            WORD
        } else {
            SEPARATOR
        };
        b += 1;
    }
    table
};

/// One word occurrence as the scanner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number (lines end at `\n`).
    pub line: u32,
    /// 1-based column: bytes from the start of the line to the word's first byte, plus one.
    pub column: u32,
}

/// Decodes the UTF-8 character starting at `bytes[i]`; returns it and its
/// length, or `None` when the bytes there are not a well-formed character.
#[inline]
fn decode_char(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    let lead = bytes[i];
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let end = i.checked_add(len)?;
    let chunk = bytes.get(i..end)?;
    // `from_utf8` rejects overlong forms, surrogates and out-of-range values,
    // exactly the sequences `utf8_chunks` would report as invalid.
    let s = std::str::from_utf8(chunk).ok()?;
    s.chars().next().map(|c| (c, len))
}

#[inline]
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Calls `emit(word, position)` for every indexable word of `bytes`, in
/// order, with `word` lowercased.
///
/// Runs longer than [`MAX_WORD_BYTES`] are skipped whole. Lines and columns
/// saturate at `u32::MAX` rather than wrap on absurd inputs.
pub fn for_each_word<F: FnMut(&[u8], Position)>(bytes: &[u8], mut emit: F) {
    let mut scratch = [0u8; MAX_WORD_BYTES];
    let n = bytes.len();
    let mut line: u32 = 1;
    let mut line_start = 0usize;
    let mut i = 0usize;
    while i < n {
        let b = bytes[i];
        match CLASS[b as usize] {
            SEPARATOR => {
                if b == b'\n' {
                    line = line.saturating_add(1);
                    line_start = i + 1;
                }
                i += 1;
                continue;
            }
            WORD => {}
            _ => match decode_char(bytes, i) {
                Some((c, _)) if is_word_char(c) => {}
                Some((_, len)) => {
                    i += len;
                    continue;
                }
                None => {
                    i += 1;
                    continue;
                }
            },
        }
        // A word starts at `i`. Scan the ASCII part fast, lowercasing into
        // the scratch buffer while the word still fits in it.
        let start = i;
        let mut ascii = true;
        loop {
            while i < n && CLASS[bytes[i] as usize] == WORD {
                if i - start < MAX_WORD_BYTES {
                    scratch[i - start] = bytes[i].to_ascii_lowercase();
                }
                i += 1;
            }
            if i < n && CLASS[bytes[i] as usize] == NON_ASCII {
                match decode_char(bytes, i) {
                    Some((c, len)) if is_word_char(c) => {
                        ascii = false;
                        i += len;
                        continue;
                    }
                    _ => break,
                }
            }
            break;
        }
        let len = i - start;
        if len > MAX_WORD_BYTES {
            continue;
        }
        let position = Position {
            line,
            column: u32::try_from(start - line_start + 1).unwrap_or(u32::MAX),
        };
        if ascii {
            emit(&scratch[..len], position);
        } else {
            // The scan above accepted only well-formed characters.
            let word = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
            // `str::to_lowercase`, not per-char lowercasing: the contract
            // wants its word-final sigma rule too.
            let lower = word.to_lowercase();
            emit(lower.as_bytes(), position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &[u8]) -> Vec<(String, u32, u32)> {
        let mut out = Vec::new();
        for_each_word(text, |w, p| {
            out.push((String::from_utf8_lossy(w).into_owned(), p.line, p.column))
        });
        out
    }

    #[test]
    fn splits_ascii_and_unicode_words_with_byte_columns() {
        assert_eq!(
            words("Foo_bar café\n  x".as_bytes()),
            vec![
                ("foo_bar".into(), 1, 1),
                ("café".into(), 1, 9),
                ("x".into(), 2, 3)
            ]
        );
    }

    #[test]
    fn invalid_utf8_separates_words() {
        assert_eq!(
            words(b"caf\xff\xfe\xc3\xa9 ab\xe2\x82Cd"),
            vec![
                ("caf".into(), 1, 1),
                ("é".into(), 1, 6),
                ("ab".into(), 1, 9),
                ("cd".into(), 1, 13)
            ]
        );
    }

    #[test]
    fn long_runs_are_dropped_whole() {
        let exact = "a".repeat(64);
        let long = "b".repeat(65);
        let text = format!("{exact} {long} c");
        let got = words(text.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, exact);
        assert_eq!(got[1], ("c".into(), 1, 132));
    }

    #[test]
    fn lowercasing_follows_str_to_lowercase() {
        let got = words("ÉCOLE İstanbul ΣΟΦΟΣ".as_bytes());
        let want: Vec<String> = ["ÉCOLE", "İstanbul", "ΣΟΦΟΣ"]
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        assert_eq!(got.iter().map(|w| w.0.clone()).collect::<Vec<_>>(), want);
    }
}
