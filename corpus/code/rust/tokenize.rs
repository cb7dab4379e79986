//! Split text into lowercase words with their line and column.

/// One occurrence of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub word: String,
    pub line: u64,
    pub column: u64,
}

const MAX_WORD_BYTES: usize = 64;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub fn tokenize(text: &str) -> Vec<Occurrence> {
    let mut out = Vec::new();
    for (line_index, line) in text.split('\n').enumerate() {
        let mut start: Option<usize> = None;
        for (offset, c) in line.char_indices().chain(std::iter::once((line.len(), ' '))) {
            match (start, is_word_char(c)) {
                (None, true) => start = Some(offset),
                (Some(s), false) => {
                    let raw = &line[s..offset];
                    if raw.len() <= MAX_WORD_BYTES {
                        out.push(Occurrence {
                            word: raw.to_lowercase(),
                            line: line_index as u64 + 1,
                            column: s as u64 + 1,
                        });
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    out
}
