//! The interactive prompt: type a fragment, see the words and where they occur.
//!
//! Line editing, history (kept in the XDG state folder across runs) and tab
//! completion come from rustyline. When stdin is not a terminal, rustyline
//! reads plain lines, so the prompt can also be scripted.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use indexer::index::{Hit, View};
use indexer::search::{matching_words, Query};

use super::lines::Lines;
use super::output::{rest_of_answer, write_locations, HumanAnswer, Layout, Shown};

const PROMPT: &str = "search> ";
/// At most this many completions are offered for a fragment.
const MAX_COMPLETIONS: usize = 200;

/// Locations `:more` shows at a time.
const MORE_PAGE: usize = 40;

const HELP: &str = "\
Type a query and press Enter; the matching words are listed most frequent
first, each with its count and numbered locations: line:column and the
line's text, under each file's path.

  frag      words beginning with frag            (spin)
  *glob*    a * anywhere: glob over the whole word (*lock*, *_t, spin*irq)
  /re/      words the regex matches as a whole   (/[a-f0-9]{8}/)
  =word     exactly that word                     (=lock)

All queries are case-insensitive. Tab completes a fragment from the index.

  :more     the next locations of the last answer
  :all      show the last answer in full (every word, every location)
  :open N   open location N in $VISUAL or $EDITOR at its line (:e N)
  :help     this text
  :quit     leave (Ctrl-D also leaves; Ctrl-C clears the line)";

/// Completes the fragment under the cursor from the index's words.
struct IndexHelper<'a> {
    view: &'a View,
}

impl Completer for IndexHelper<'_> {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let fragment = before[start..].to_lowercase();
        if fragment.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let query = Query::Prefix(fragment);
        let candidates = self
            .view
            .hits(|vocabulary| {
                let mut ids = matching_words(vocabulary, &query);
                ids.truncate(MAX_COMPLETIONS);
                ids
            })
            .into_iter()
            .take(MAX_COMPLETIONS)
            .map(|hit| self.view.word(&hit).to_string())
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for IndexHelper<'_> {
    type Hint = String;
}
impl Highlighter for IndexHelper<'_> {}
impl Validator for IndexHelper<'_> {}
impl Helper for IndexHelper<'_> {}

/// `$XDG_STATE_HOME/indexer/history`, or `~/.local/state/indexer/history`.
fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("indexer").join("history"))
}

/// Runs the prompt until `:quit` or end of input; returns the exit code.
pub fn run(view: &View, args: &super::args::Args, layout: Layout) -> i32 {
    let stats = args.stats;
    let mut editor: Editor<IndexHelper<'_>, DefaultHistory> = match Editor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("indexer: cannot open the prompt: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(IndexHelper { view }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!("Type a word fragment (:help for more, Ctrl-D to leave).");
    let mut last: Option<(String, Vec<Hit>)> = None;
    // The last answer's numbered locations, and how far `:more` has gone.
    let mut shown = Shown::default();
    let mut more_from = 0usize;
    let code = loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break 0,
            // A line that is not UTF-8 is answered, not the end of the
            // session: the next line is read as usual.
            Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                eprintln!("indexer: not UTF-8: type the query as text");
                continue;
            }
            Err(e) => {
                eprintln!("indexer: cannot read input: {e}");
                break 1;
            }
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(text);
        // Saved as it is typed, so a session ended by a signal keeps it.
        if let Some(path) = &history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.append_history(path);
        }
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let written = match text {
            ":quit" | ":q" | ":exit" => break 0,
            ":help" | ":h" | "?" => writeln!(out, "{HELP}"),
            ":all" => match &last {
                Some((query, words)) => {
                    if !view.verify(words) {
                        eprintln!("indexer: {}", super::damaged_message(args));
                        break 2;
                    }
                    shown = Shown::default();
                    HumanAnswer::prepare(view, &layout, query, words, true)
                        .write(&mut out, view, &layout, &mut shown)
                }
                None => writeln!(out, "no query yet: type one first"),
            },
            ":more" | ":m" => match &last {
                Some((_, words)) => {
                    let groups = rest_of_answer(view, words, more_from, MORE_PAGE);
                    if view.is_damaged() {
                        eprintln!("indexer: {}", super::damaged_message(args));
                        break 2;
                    }
                    show_more(&mut out, view, &layout, &groups, &mut shown, &mut more_from)
                }
                None => writeln!(out, "no query yet: type one first"),
            },
            command if command.starts_with(":open") || command.starts_with(":e ") => {
                let number = command
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<usize>().ok());
                match number
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| shown.locations.get(n))
                {
                    Some(&location) => match open_in_editor(view, &layout, location) {
                        Ok(()) => Ok(()),
                        Err(e) => writeln!(out, "{e}"),
                    },
                    None => writeln!(
                        out,
                        "say :open N with N a location's number in the last answer (1 to {})",
                        shown.locations.len()
                    ),
                }
            }
            command if command.starts_with(':') => {
                writeln!(
                    out,
                    "unknown command {command}: :help lists what the prompt understands"
                )
            }
            query_text => match Query::parse(query_text) {
                Ok(query) => {
                    let started = Instant::now();
                    let words = view.hits(|vocabulary| matching_words(vocabulary, &query));
                    let elapsed = started.elapsed();
                    // The locations shown are read, and verified, first.
                    let answer = HumanAnswer::prepare(view, &layout, query_text, &words, false);
                    if view.is_damaged() {
                        eprintln!("indexer: {}", super::damaged_message(args));
                        break 2;
                    }
                    shown = Shown::default();
                    more_from = 0;
                    let result = answer.write(&mut out, view, &layout, &mut shown);
                    if stats {
                        eprintln!(
                            "{} words in {:.3} ms",
                            words.len(),
                            elapsed.as_secs_f64() * 1e3
                        );
                    }
                    last = Some((query_text.to_string(), words));
                    result
                }
                Err(e) => writeln!(out, "{e}"),
            },
        };
        if let Err(e) = written.and_then(|_| out.flush()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                break 0;
            }
            eprintln!("indexer: cannot write output: {e}");
            break 1;
        }
    };
    code
}

/// Prints a `:more` page, numbering on from the last answer.
fn show_more(
    out: &mut impl Write,
    view: &View,
    layout: &Layout,
    groups: &[(&Hit, Vec<indexer::index::Location>)],
    shown: &mut Shown,
    from: &mut usize,
) -> io::Result<()> {
    if groups.iter().all(|(_, locations)| locations.is_empty()) {
        return writeln!(out, "that was all of the last answer");
    }
    for (hit, locations) in groups {
        let lines = Lines::read(view, layout.tree.as_deref(), locations);
        writeln!(out, "{} (more)", view.word(hit))?;
        shown.forget_heading();
        write_locations(out, view, layout, locations, &lines, shown)?;
        *from += locations.len();
    }
    Ok(())
}

/// Opens `location` in `$VISUAL` or `$EDITOR` (else `vi`) at its line, and
/// column where the editor takes one; waits for it to end.
fn open_in_editor(
    view: &View,
    layout: &Layout,
    location: indexer::index::Location,
) -> Result<(), String> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_string());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi").to_string();
    let mut command = std::process::Command::new(&program);
    command.args(words);
    let relative = view.path(location.file);
    let path = match layout.tree.as_ref().or(layout.shown_root.as_ref()) {
        Some(root) => root.join(relative),
        None => PathBuf::from(relative),
    };
    let (line, column) = (location.line, location.column);
    let name = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "vim" | "nvim" | "vi" | "gvim" | "mvim" => command
            .arg(format!("+call cursor({line}, {column})"))
            .arg(&path),
        "emacs" | "emacsclient" => command.arg(format!("+{line}:{column}")).arg(&path),
        "nano" => command.arg(format!("+{line},{column}")).arg(&path),
        "code" | "codium" | "code-insiders" => command
            .arg("-g")
            .arg(format!("{}:{line}:{column}", path.display())),
        _ => command.arg(format!("+{line}")).arg(&path),
    };
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{program} ended with {status}")),
        Err(e) => Err(format!(
            "cannot start {program} ({e}): set VISUAL or EDITOR to your editor"
        )),
    }
}
