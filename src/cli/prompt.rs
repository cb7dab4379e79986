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

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use indexer::index::{Damaged, View};
use indexer::search::{matching_words, Query};

use super::answer::{find, Entry, FindError, Narrowing, PathFilter, Request};
use super::lines::Lines;
use super::output::{damaged, rest_of_answer, write_locations, HumanAnswer, Layout, Shown};

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
        let view = self.view;
        // A damaged index offers nothing; the query typed reports it.
        let Ok(hits) = view.hits(|vocabulary| matching_words(vocabulary, &query)) else {
            return Ok((pos, Vec::new()));
        };
        // Most frequent first, as they are listed on a second Tab.
        let Ok(mut ranked) = (0..hits.len())
            .map(|k| Ok((view.count(&hits[k])?, k)))
            .collect::<Result<Vec<(u64, usize)>, Damaged>>()
        else {
            return Ok((pos, Vec::new()));
        };
        ranked.sort_by_key(|&(count, k)| (std::cmp::Reverse(count), k));
        ranked.truncate(MAX_COMPLETIONS);
        // The first Tab fills the prefix common to the candidates: with
        // the first and last words in byte order among them, it is the one
        // common to every match, not only to the most frequent.
        if hits.len() > MAX_COMPLETIONS {
            for k in [0, hits.len() - 1] {
                if !ranked.iter().any(|&(_, r)| r == k) {
                    ranked.push((0, k));
                }
            }
        }
        let candidates = ranked
            .into_iter()
            // A damaged word is no candidate (its answer says why).
            .filter_map(|(_, k)| Some(view.word(&hits[k]).ok()?.into_owned()))
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

/// Set by SIGINT while the prompt runs: Ctrl-C stops an answer being
/// printed, not the session (the index would be lost with it).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// From now on Ctrl-C sets [`INTERRUPTED`] instead of ending the process.
/// Programs the prompt starts (the editor, the pager) get the default
/// action back at exec, as for any caught signal.
fn catch_interrupts() {
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is signal safe.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
        eprintln!("indexer: Ctrl-C will end the session ({e})");
    }
}

/// Why printing stopped early (Ctrl-C).
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

fn is_stopped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

/// A writer that fails with [`Stopped`] once Ctrl-C was pressed.
struct Stoppable<W>(W);

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(io::Error::other(Stopped));
        }
        self.0.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Whether bytes typed ahead wait on stdin.
fn input_pending() -> bool {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let got = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::FIONREAD, &mut waiting) };
    got == 0 && waiting > 0
}

/// Rows of the terminal on stdout.
fn terminal_rows() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (got == 0 && size.ws_row > 0).then_some(usize::from(size.ws_row))
}

/// `$PAGER` (else `less`), reading what is written to its stdin; `less`
/// gets `LESS=FRX` unless LESS is set (colours, and no screen switch).
fn start_pager() -> Option<std::process::Child> {
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -R".to_string());
    let mut words = pager.split_whitespace();
    let program = words.next()?;
    let mut command = std::process::Command::new(program);
    command.args(words).stdin(std::process::Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        command.env("LESS", "FRX");
    }
    command.spawn().ok()
}

/// Writes `answer` through the pager, streaming; a pager that cannot be
/// started leaves the answer on stdout.
fn through_pager(answer: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let Some(mut pager) = start_pager() else {
        let stdout = io::stdout();
        let mut out = Stoppable(stdout.lock());
        return answer(&mut out).and_then(|()| out.flush());
    };
    let written = match pager.stdin.take() {
        Some(stdin) => {
            let mut out = Stoppable(io::BufWriter::new(stdin));
            let written = answer(&mut out).and_then(|()| out.flush());
            drop(out);
            written
        }
        None => Ok(()),
    };
    let _ = pager.wait();
    match written {
        // Leaving the pager early closes the pipe: the answer was seen.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Shows a prepared answer: through the pager when `paging` and it is
/// taller than the screen, else on stdout.
fn show(paging: bool, answer: &[u8]) -> io::Result<()> {
    let rows = memchr::memchr_iter(b'\n', answer).count();
    // Lines typed ahead wait in the terminal: a pager would read them as
    // its commands, so the answer goes to the screen instead.
    let paging = paging && !input_pending();
    if paging && terminal_rows().is_some_and(|screen| rows + 1 >= screen) {
        return through_pager(|out| out.write_all(answer));
    }
    let stdout = io::stdout();
    let mut out = Stoppable(stdout.lock());
    out.write_all(answer).and_then(|()| out.flush())
}

/// What the prompt remembers between lines.
struct Session<'a> {
    view: &'a View,
    args: &'a super::args::Args,
    layout: Layout,
    paths: &'a PathFilter,
    /// The pager is used: stdout is a terminal.
    paging: bool,
    /// The last answer: its request and words.
    last: Option<(Request, Vec<Entry>)>,
    /// The last answer's numbered locations, and how far `:more` has gone.
    shown: Shown,
    more_from: usize,
}

/// What to do after a line.
enum Next {
    Read,
    Leave(i32),
}

/// The line editor, its history file and the Ctrl-C flag: what a session
/// reads through.
struct Reader<'v> {
    editor: Editor<IndexHelper<'v>, DefaultHistory>,
    history: Option<PathBuf>,
}

impl<'v> Reader<'v> {
    /// Opens the editor (Tab fills the longest common prefix, a second Tab
    /// lists every completion) and loads the history.
    fn open(view: &'v View) -> Result<Reader<'v>, ReadlineError> {
        let config = rustyline::Config::builder()
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut editor: Editor<IndexHelper<'v>, DefaultHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(IndexHelper { view }));
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        Ok(Reader { editor, history })
    }

    /// The next input: `Ok(None)` at its end. A line that is not UTF-8 is
    /// answered, not the end of the session; Ctrl-C at the prompt is
    /// nothing.
    fn read(&mut self) -> Result<Option<String>, ReadlineError> {
        loop {
            match self.editor.readline(PROMPT) {
                Ok(line) => return Ok(Some(line)),
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(None),
                Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    eprintln!("indexer: not UTF-8: type the query as text");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Remembers a query, saved as it is typed so that a session ended by a
    /// signal keeps it.
    fn remember(&mut self, text: &str) {
        let _ = self.editor.add_history_entry(text);
        if let Some(path) = &self.history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = self.editor.append_history(path);
        }
    }
}

/// Runs the prompt until `:quit` or end of input; returns the exit code.
pub fn run(view: &View, args: &super::args::Args, layout: Layout, paths: &PathFilter) -> i32 {
    let mut reader = match Reader::open(view) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("indexer: cannot open the prompt: {e}");
            return super::EXIT_FAILURE;
        }
    };
    catch_interrupts();
    eprintln!("Type a word fragment (:help for more, Ctrl-D to leave).");
    let mut session = Session {
        view,
        args,
        layout,
        paths,
        paging: io::stdout().is_terminal(),
        last: None,
        shown: Shown::default(),
        more_from: 0,
    };
    loop {
        let input = match reader.read() {
            Ok(Some(input)) => input,
            Ok(None) => return super::EXIT_OK,
            Err(e) => {
                eprintln!("indexer: cannot read input: {e}");
                return super::EXIT_FAILURE;
            }
        };
        // A pasted block is one query per line, in order.
        for text in input
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            reader.remember(text);
            INTERRUPTED.store(false, Ordering::Relaxed);
            if let Next::Leave(code) = session.answer(text) {
                return code;
            }
        }
    }
}

impl Session<'_> {
    /// Answers one line.
    fn answer(&mut self, text: &str) -> Next {
        let written = match text {
            ":quit" | ":q" | ":exit" => return Next::Leave(super::EXIT_OK),
            ":help" | ":h" | "?" => self.print(|out| writeln!(out, "{HELP}")),
            ":all" => self.all(),
            ":more" | ":m" => self.more(),
            command if command.starts_with(":open") || command.starts_with(":e ") => {
                self.open(command)
            }
            command if command.starts_with(':') => self.print(|out| {
                writeln!(
                    out,
                    "unknown command {command}: :help lists what the prompt understands"
                )
            }),
            query => self.query(query),
        };
        match written {
            Ok(()) => Next::Read,
            Err(e) if is_stopped(&e) => {
                // The rest of a cut line, then where things stand.
                println!("\n(stopped: Ctrl-C)");
                Next::Read
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Next::Leave(super::EXIT_OK),
            Err(e) if super::output::is_damaged(&e) => {
                eprintln!("indexer: {}", super::damaged_message(self.args));
                Next::Leave(super::EXIT_BAD_INPUT)
            }
            Err(e) => {
                eprintln!("indexer: cannot write output: {e}");
                Next::Leave(super::EXIT_FAILURE)
            }
        }
    }

    /// Prints to stdout, stopping at Ctrl-C.
    fn print(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let stdout = io::stdout();
        let mut out = Stoppable(stdout.lock());
        write(&mut out).and_then(|()| out.flush())
    }

    fn query(&mut self, text: &str) -> io::Result<()> {
        let request = match Request::parse(text) {
            Ok(request) => request,
            Err(e) => return self.print(|out| writeln!(out, "{e}")),
        };
        let narrowing = Narrowing {
            paths: self.paths,
            case_sensitive: self.args.case_sensitive,
            tree: self.layout.tree.as_deref(),
        };
        let started = Instant::now();
        let words = match find(self.view, &request, &narrowing) {
            Ok(words) => words,
            Err(FindError::Input(e)) => return self.print(|out| writeln!(out, "{e}")),
            Err(FindError::Damaged) => return Err(damaged(Damaged)),
        };
        let elapsed = started.elapsed();
        let (view, layout) = (self.view, &self.layout);
        // The locations shown are read, and verified, first.
        let answer =
            HumanAnswer::prepare(view, layout, &request.text, &words, false).map_err(damaged)?;
        self.shown = Shown::default();
        self.more_from = 0;
        let shown = &mut self.shown;
        let note = request.note.as_deref();
        let written = if words.is_empty() {
            let suggestion = super::did_you_mean(view, &request);
            self.print(|out| {
                if let Some(note) = note {
                    writeln!(out, "{note}")?;
                }
                writeln!(out, "no words match {:?}{suggestion}", request.text)
            })
        } else {
            let paging = self.paging;
            let mut buffer = Stoppable(Vec::new());
            let result = (|| {
                if let Some(note) = note {
                    writeln!(buffer, "{note}")?;
                }
                answer.write(&mut buffer, view, layout, shown)
            })();
            result.and_then(|()| show(paging, &buffer.0))
        };
        if self.args.stats {
            eprintln!(
                "{} words in {:.3} ms; answer shown in {:.3} ms",
                words.len(),
                elapsed.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        self.last = Some((request, words));
        written
    }

    /// `:all`: the last answer in full, through the pager on a terminal.
    fn all(&mut self) -> io::Result<()> {
        let Some((request, words)) = &self.last else {
            return self.print(|out| writeln!(out, "no query yet: type one first"));
        };
        let view = self.view;
        // Every list is read, and verified, before the first line is
        // printed: a damaged index is reported, not half an answer.
        view.verify(&Entry::lazy_hits(words)).map_err(damaged)?;
        self.shown = Shown::default();
        let (layout, shown) = (&self.layout, &mut self.shown);
        let answer =
            HumanAnswer::prepare(view, layout, &request.text, words, true).map_err(damaged)?;
        let mut write = |out: &mut dyn Write| answer.write(out, view, layout, shown);
        if self.paging && !input_pending() {
            through_pager(write)
        } else {
            let stdout = io::stdout();
            let mut out = Stoppable(io::BufWriter::new(stdout.lock()));
            write(&mut out).and_then(|()| out.flush())
        }
    }

    /// `:more`: the next page of the last answer.
    fn more(&mut self) -> io::Result<()> {
        let Some((_, words)) = &self.last else {
            return self.print(|out| writeln!(out, "no query yet: type one first"));
        };
        let view = self.view;
        let groups = rest_of_answer(view, words, self.more_from, MORE_PAGE).map_err(damaged)?;
        let (layout, shown, from) = (&self.layout, &mut self.shown, &mut self.more_from);
        let mut buffer = Stoppable(Vec::new());
        show_more(&mut buffer, view, layout, &groups, shown, from)?;
        show(self.paging, &buffer.0)
    }

    /// `:open N`.
    fn open(&self, command: &str) -> io::Result<()> {
        let number = command
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok());
        let location = number
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| self.shown.locations.get(n));
        match location {
            Some(&location) => match open_in_editor(self.view, &self.layout, location) {
                Ok(()) => Ok(()),
                Err(e) => self.print(|out| writeln!(out, "{e}")),
            },
            None => self.print(|out| {
                writeln!(
                    out,
                    "say :open N with N a location's number in the last answer (1 to {})",
                    self.shown.locations.len()
                )
            }),
        }
    }
}

/// Prints a `:more` page, numbering on from the last answer.
fn show_more(
    out: &mut impl Write,
    view: &View,
    layout: &Layout,
    groups: &[(&Entry, Vec<indexer::index::Location>)],
    shown: &mut Shown,
    from: &mut usize,
) -> io::Result<()> {
    if groups.iter().all(|(_, locations)| locations.is_empty()) {
        return writeln!(out, "that was all of the last answer");
    }
    // The paths are checked before the first line, not where it meets them.
    for location in groups.iter().flat_map(|(_, locations)| locations) {
        view.path(location.file).map_err(damaged)?;
    }
    for (entry, locations) in groups {
        let lines = Lines::read(view, layout.tree.as_deref(), locations);
        writeln!(out, "{} (more)", entry.word(view).map_err(damaged)?)?;
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
    let relative = view.path(location.file).map_err(|e| e.to_string())?;
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
