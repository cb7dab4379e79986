//! The `indexer` command: arguments, build with progress, summary, answers
//! and the prompt. Everything user-facing lives here; the library does the work.

mod answer;
mod args;
mod lines;
mod output;
pub(crate) mod paths;
mod prompt;
mod style;

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use indexer::index::Excludes;
use indexer::index::{BuildError, Fault, TestLimits};
use indexer::index::{BuildOptions, BuildReport, Phase, Progress, View};
use indexer::parallel;
use indexer::search::similar_words;
use indexer::store::{self, Output, StoreError, Stored};

use args::Args;

/// Exit code of a session or answer that went well.
const EXIT_OK: i32 = 0;
/// Exit code for bad input (arguments, the directory, a query), as rg uses.
const EXIT_BAD_INPUT: i32 = 2;
/// Files per batch when `--delay` is given without `--batch` (pprocess's slice).
const DELAY_BATCH_FILES: usize = 5;
/// Exit code when the build itself could not run.
const EXIT_FAILURE: i32 = 1;
/// Exit code after answering when some files could not be indexed because
/// their worker crashed on them (as rg exits 2 when an error occurred).
const EXIT_INCOMPLETE: i32 = 2;
/// How many failed files the summary names.
const FAILED_SHOWN: usize = 3;
/// Exit code of `--query` when no query matched anything (as grep and rg).
const EXIT_NO_MATCH: i32 = 1;

fn fail(code: i32, message: impl std::fmt::Display) -> i32 {
    eprintln!("indexer: {message}");
    code
}

/// Runs the command; returns the process exit code.
pub fn run() -> i32 {
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if let Some(code) = print_generated(&args) {
        return code;
    }
    let Checked {
        queries,
        paths,
        colors,
        excludes,
    } = match check_inputs(&args) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let mut options = build_options(&args, excludes);

    // An index kept inside the tree it indexes is not part of the tree.
    if let (Some(directory), Some(file)) =
        (&args.directory, args.index.as_ref().or(args.save.as_ref()))
    {
        if let Some(relative) = paths::relative_to(file, directory) {
            options
                .excludes
                .exclude_matching(&store::family_pattern(&relative));
        }
    }
    let Obtained {
        view,
        note,
        incomplete,
        root,
    } = match obtain_view(&args, &options) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    // Some files are missing from the index: said in the summary, and the
    // exit code says so once everything else is done.
    let finish = |code: i32| match code {
        0 if incomplete => EXIT_INCOMPLETE,
        code => code,
    };

    let note = note.filter(|_| !args.quiet);
    let interactive = queries.is_empty();
    let layout = layout(&args, &root, colors, interactive);
    if !queries.is_empty() {
        let code = answer_queries(&view, &queries, &args, &layout, &paths);
        // After the answers: a damaged file then fails with one line only.
        if let (0 | EXIT_NO_MATCH, Some(note)) = (code, note) {
            eprintln!("{note}");
        }
        view.discard(options.workers);
        return finish(code);
    }
    if let Some(note) = note {
        eprintln!("{note}");
    }
    if args.noprompt {
        view.discard(options.workers);
        return finish(0);
    }
    finish(prompt::run(&view, &args, layout, &paths))
}

/// The arguments, or the exit code once clap's help, version or one-line
/// error was printed.
fn parse_args() -> Result<Args, i32> {
    Args::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return EXIT_OK;
        }
        // clap's message spans lines: keep its first paragraph (what is
        // wrong, and which argument) on one line.
        let rendered = e.to_string();
        let first: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .take_while(|line| !line.is_empty())
            .collect();
        let first = first.join(" ");
        let first = first.trim_start_matches("error: ");
        fail(EXIT_BAD_INPUT, format!("{first} (see indexer --help)"))
    })
}

/// `--completions`, `--man`, `--type-list`: printed, with the exit code.
fn print_generated(args: &Args) -> Option<i32> {
    if let Some(shell) = args.completions {
        let mut command = <Args as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "indexer", &mut io::stdout());
        return Some(EXIT_OK);
    }
    if args.man {
        let page = clap_mangen::Man::new(<Args as clap::CommandFactory>::command());
        return Some(match page.render(&mut io::stdout()) {
            Ok(()) => EXIT_OK,
            Err(e) => output_error(e),
        });
    }
    args.type_list.then(print_type_list)
}

/// What the arguments ask for, each checked before any time is spent on
/// the build.
struct Checked {
    queries: Vec<answer::Request>,
    paths: answer::PathFilter,
    colors: style::Colors,
    excludes: Excludes,
}

fn check_inputs(args: &Args) -> Result<Checked, i32> {
    let mut queries = Vec::with_capacity(args.queries.len());
    for text in &args.queries {
        // Trimmed as at the prompt.
        if text.trim().is_empty() {
            return Err(fail(
                EXIT_BAD_INPUT,
                "an empty --query matches nothing: give a word fragment",
            ));
        }
        queries.push(answer::Request::parse(text).map_err(|e| fail(EXIT_BAD_INPUT, e))?);
    }
    let paths = answer::PathFilter::new(&args.globs, &args.types, &args.types_not)
        .map_err(|e| fail(EXIT_BAD_INPUT, e))?;
    if args.case_sensitive && args.directory.is_none() {
        return Err(fail(
            EXIT_BAD_INPUT,
            "-s reads each word's spelling from the tree: give DIRECTORY with --index",
        ));
    }
    let colors =
        style::Colors::choose(args.color, &args.colors).map_err(|e| fail(EXIT_BAD_INPUT, e))?;
    let excludes = Excludes::new(&args.exclude)
        .map_err(|e| fail(EXIT_BAD_INPUT, e))?
        .honour_ignore_files(!args.no_ignore);
    Ok(Checked {
        queries,
        paths,
        colors,
        excludes,
    })
}

fn build_options(args: &Args, excludes: Excludes) -> BuildOptions {
    BuildOptions {
        workers: args
            .workers
            .map(|w| w as usize)
            .unwrap_or_else(parallel::available_cores),
        // --delay simulates pprocess's demo, whose unit of work is a slice of
        // files: without --batch, hand out its default slice of 5 files, so
        // the number of batches (and of delays) does not grow with workers.
        batch_files: args
            .batch
            .map(|b| b as usize)
            .or(args.delay.filter(|d| *d > 0.0).map(|_| DELAY_BATCH_FILES)),
        delay: Duration::from_secs_f64(args.delay.unwrap_or(0.0)),
        excludes,
        fault: Fault::from_env(),
        memory: args.memory,
        test_limits: TestLimits::from_env(),
    }
}

/// How answers look, from the arguments and where stdout goes. `root` is
/// the indexed tree's folder; lines are read from it when DIRECTORY was
/// given (an opened index alone shows locations without text).
fn layout(
    args: &Args,
    root: &std::path::Path,
    colors: style::Colors,
    interactive: bool,
) -> output::Layout {
    let terminal = io::stdout().is_terminal();
    let heading = match (args.heading, args.no_heading) {
        (true, _) => true,
        (_, true) => false,
        _ => terminal || interactive,
    };
    output::Layout {
        heading,
        numbered: interactive,
        width: terminal.then(terminal_width).flatten(),
        colors,
        shown_root: Some(style::shown_root(root, args.absolute)),
        tree: args.directory.clone(),
    }
}

/// Columns of the terminal on stdout, or $COLUMNS.
fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if got == 0 && size.ws_col > 0 {
        return Some(usize::from(size.ws_col));
    }
    std::env::var("COLUMNS")
        .ok()?
        .parse()
        .ok()
        .filter(|&c| c > 0)
}

/// The index to answer from, a note to show once answers are known good,
/// and whether files are missing from it.
struct Obtained {
    view: View,
    note: Option<String>,
    incomplete: bool,
    /// The indexed tree's folder.
    root: std::path::PathBuf,
}

/// The index to answer from: built, built and saved, refreshed, or opened,
/// as the arguments say; reports what was done on stderr (an opened file's
/// note is returned, to be shown once answers are known good). `Err` is the
/// exit code after a one-line error.
fn obtain_view(args: &Args, options: &BuildOptions) -> Result<Obtained, i32> {
    let Some(directory) = &args.directory else {
        return open_saved(args);
    };
    // Bad input is refused before any work: the tree, and where to save.
    if let Err(e) = indexer::index::check_root(directory) {
        return Err(fail(EXIT_BAD_INPUT, e));
    }
    let saving = args.save.as_ref().or(args.index.as_ref());
    if let Some(file) = saving {
        if let Err(e) = paths::check_writable(file).and_then(|()| store::check_replaceable(file)) {
            return Err(fail(EXIT_BAD_INPUT, e));
        }
    }
    let root = paths::canonical_root(directory);
    if let Some(file) = &args.index {
        match Stored::open_to_refresh(file) {
            Ok(Some((stored, _))) if stored.is_sharded() => {
                // Its parts were merged on several machines: on this one,
                // a fresh build replaces it as one file (and its parts go).
                eprintln!(
                    "indexer: {} is saved in {} parts; rebuilding it here as one file",
                    file.display(),
                    stored.shards.len() + 1
                );
            }
            Ok(Some((stored, set_aside))) => {
                if let Some(damaged) = set_aside {
                    eprintln!("indexer: {damaged}; refreshing from the index alone");
                }
                let options = refresh_options(args, options, file, directory, &stored);
                return refresh_with_progress(args, &options, file, stored, &root);
            }
            Ok(None) => {}
            Err(e) => return Err(fail(EXIT_BAD_INPUT, e)),
        }
    }
    build_fresh(args, options, directory, &root, saving)
}

/// `--index FILE` alone: the saved index as it is, the tree unread.
fn open_saved(args: &Args) -> Result<Obtained, i32> {
    let Some(file) = &args.index else {
        return Err(fail(
            EXIT_BAD_INPUT,
            "give a DIRECTORY to index, or --index FILE",
        ));
    };
    if !args.exclude.is_empty() {
        return Err(fail(
            EXIT_BAD_INPUT,
            "--exclude applies when a DIRECTORY is indexed; an opened index is answered as saved",
        ));
    }
    match Stored::open(file) {
        Ok(Some(stored)) => {
            let (root, saved_at) = (stored.root(), stored.saved_at());
            // No tree: no lines read, so no stamps needed.
            let view = stored
                .into_view_without_stamps()
                .map_err(|e| fail(EXIT_BAD_INPUT, StoreError::Format(file.clone(), e)))?;
            let note = format!(
                "opened {}: {} files; built from {root}, saved {}; the tree was not checked for changes since",
                file.display(),
                view.files().len(),
                paths::format_time(saved_at),
            );
            Ok(Obtained {
                view,
                note: Some(note),
                incomplete: false,
                root: root.into(),
            })
        }
        Ok(None) => Err(fail(
            EXIT_BAD_INPUT,
            format!(
                "{} does not exist (make it with `indexer DIR --index {}`)",
                file.display(),
                file.display()
            ),
        )),
        Err(e) => Err(fail(EXIT_BAD_INPUT, e)),
    }
}

/// A refresh keeps the build's --exclude globs unless new ones are given,
/// as a user re-running the same command without them would expect.
fn refresh_options(
    args: &Args,
    options: &BuildOptions,
    file: &std::path::Path,
    directory: &std::path::Path,
    stored: &Stored,
) -> BuildOptions {
    let mut options = options.clone();
    if args.exclude.is_empty() && !stored.excludes().is_empty() {
        if let Ok(saved) = Excludes::new(stored.excludes()) {
            let mut saved = saved.honour_ignore_files(!args.no_ignore);
            if let Some(relative) = paths::relative_to(file, directory) {
                saved.exclude_matching(&store::family_pattern(&relative));
            }
            options.excludes = saved;
        }
    }
    options
}

/// A fresh build of `directory`, with its progress line and summary, saved
/// if `saving` names a file.
fn build_fresh(
    args: &Args,
    options: &BuildOptions,
    directory: &std::path::Path,
    root: &std::path::Path,
    saving: Option<&std::path::PathBuf>,
) -> Result<Obtained, i32> {
    let temporary = std::env::temp_dir();
    let output = match saving {
        Some(file) => Output::Saved(file),
        None => Output::Temporary(&temporary),
    };
    let bar = progress_bar();
    let mut phase = Phase::Indexing;
    let result = store::build(directory, root, options, output, &mut |p: &Progress| {
        show_progress(&bar, &mut phase, p)
    });
    bar.finish_and_clear();
    let built = match result {
        Ok(built) => built,
        Err(StoreError::Build(BuildError::Root(e))) => return Err(fail(EXIT_BAD_INPUT, e)),
        Err(e) => return Err(fail(EXIT_FAILURE, e)),
    };
    print_summary(&built.report, args.verbose, args.stats);
    print_memory(&built.view, args.stats);
    if let (Some(file), Some(saved)) = (saving, built.saved) {
        eprintln!(
            "saved {} ({}) in {:.2} s",
            file.display(),
            human_bytes(saved.bytes),
            saved.time.as_secs_f64()
        );
    }
    let incomplete = !built.report.failed.is_empty();
    if ends_after_answers(args) {
        // The walk's paths, two allocations a file: the exit takes them
        // with the heap, where dropping them frees each one.
        std::mem::forget(built.report);
    }
    Ok(Obtained {
        view: built.view,
        note: None,
        incomplete,
        root: root.to_path_buf(),
    })
}

/// True when the process ends once the index has answered (`--query` or
/// `--noprompt`): what it holds then need not be freed piece by piece.
fn ends_after_answers(args: &Args) -> bool {
    args.noprompt || !args.queries.is_empty()
}

fn refresh_with_progress(
    args: &Args,
    options: &BuildOptions,
    file: &std::path::Path,
    stored: Stored,
    root: &std::path::Path,
) -> Result<Obtained, i32> {
    let bar = progress_bar();
    let mut phase = Phase::Indexing;
    let result = store::refresh(file, stored, root, options, &mut |p: &Progress| {
        show_progress(&bar, &mut phase, p)
    });
    bar.finish_and_clear();
    let (view, refreshed) = match result {
        Ok(done) => done,
        Err(
            e @ (StoreError::Format(..)
            | StoreError::DamagedDelta { .. }
            | StoreError::OtherRoot { .. }),
        ) => return Err(fail(EXIT_BAD_INPUT, e)),
        Err(StoreError::Build(BuildError::Root(e))) => return Err(fail(EXIT_BAD_INPUT, e)),
        Err(e) => return Err(fail(EXIT_FAILURE, e)),
    };
    let reindexed = refreshed.added + refreshed.changed;
    if reindexed > 0 {
        print_summary(&refreshed.build, args.verbose, args.stats);
    }
    let saved = match refreshed.saved {
        Some(s) if s.delta => format!(
            "; saved the changes beside it ({}) in {:.2} s",
            human_bytes(s.bytes),
            s.time.as_secs_f64()
        ),
        Some(s) => format!(
            "; over an eighth of the tree differed from its last full save, so merged it all into a new one ({}) in {:.2} s",
            human_bytes(s.bytes),
            s.time.as_secs_f64()
        ),
        None => "; nothing to save".to_string(),
    };
    eprintln!(
        "refreshed {} in {:.2} s: reused {} file{}, re-indexed {reindexed} ({} added, {} changed), removed {}{saved}",
        file.display(),
        refreshed.time.as_secs_f64(),
        refreshed.reused,
        if refreshed.reused == 1 { "" } else { "s" },
        refreshed.added,
        refreshed.changed,
        refreshed.removed,
    );
    if args.stats {
        eprintln!(
            "time: list and compare {:.3} s, re-index {:.3} s, scan saved lists {:.3} s, write {:.3} s, total {:.3} s",
            refreshed.compare_time.as_secs_f64(),
            refreshed.build.timings.total.as_secs_f64(),
            refreshed.scan_time.as_secs_f64(),
            refreshed.saved.map_or(0.0, |s| s.time.as_secs_f64()),
            refreshed.time.as_secs_f64()
        );
    }
    print_memory(&view, args.stats);
    Ok(Obtained {
        view,
        note: None,
        incomplete: !refreshed.build.failed.is_empty(),
        root: root.to_path_buf(),
    })
}

fn print_memory(view: &View, stats: bool) {
    if !stats {
        return;
    }
    let mb = |b: usize| b as f64 / 1e6;
    for layer in view.layers() {
        let m = layer.index().memory();
        eprintln!(
            "index memory: runs {:.1} MB, vocabulary {:.1} MB, pieces {:.1} MB ({} pieces), files {:.1} MB",
            mb(m.runs),
            mb(m.vocabulary),
            mb(m.pieces),
            m.pieces_count,
            mb(m.files)
        );
    }
}

fn progress_bar() -> ProgressBar {
    // Drawn only from the poll loop's callback: indicatif's steady tick
    // would start a thread, and the runtime refuses to fork then.
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Updates the progress line; a new phase is drawn at once (the bar
/// otherwise draws at most 10 times a second, and a phase that blocks
/// would leave the last indexing line on screen).
fn show_progress(bar: &ProgressBar, shown: &mut Phase, p: &Progress) {
    bar.set_message(progress_line(p));
    if p.phase != *shown {
        *shown = p.phase;
        bar.suspend(|| {});
    }
}

/// The build's progress: share of bytes, rate and time left while the
/// workers run, then the phase, so the line never sits still.
fn progress_line(p: &Progress) -> String {
    match p.phase {
        Phase::Merging => {
            return format!(
                "merging the workers' runs ({} files indexed)...",
                p.files_done
            )
        }
        Phase::Saving => return "saving the index...".to_string(),
        Phase::Indexing => {}
    }
    let secs = p.elapsed.as_secs_f64().max(1e-3);
    let rate = p.bytes_done as f64 / secs;
    let share = match p.bytes_total {
        0 => 100.0,
        total => p.bytes_done as f64 * 100.0 / total as f64,
    };
    let left = match p.bytes_done {
        // Nothing done yet: no rate to tell the time left from.
        0 => String::new(),
        _ => {
            let remaining = p.bytes_total.saturating_sub(p.bytes_done) as f64 / rate.max(1.0);
            format!(", {} left", human_duration(remaining))
        }
    };
    format!(
        "indexing: {share:.0}% ({} of {}), {}/s{left}; {}/{} files, {} worker{} busy",
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        human_bytes(rate as u64),
        p.files_done,
        p.files_total,
        p.busy,
        if p.busy == 1 { "" } else { "s" }
    )
}

/// `7 s`, `2 min 5 s`, `1 h 3 min`.
fn human_duration(secs: f64) -> String {
    let secs = secs.round() as u64;
    match secs {
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn print_summary(report: &BuildReport, verbose: bool, stats: bool) {
    let secs = report.timings.total.as_secs_f64();
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "indexed {} file{} ({}) in {:.2} s, {:.1} MB/s: {} words, {} distinct; {} worker{}",
        report.indexed,
        if report.indexed == 1 { "" } else { "s" },
        human_bytes(report.bytes),
        secs,
        report.bytes as f64 / 1e6 / secs.max(1e-6),
        report.words,
        report.distinct,
        report.workers,
        if report.workers == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        err,
        "skipped {} file{}: {} binary, {} unreadable, {} not regular; {} failed",
        report.skipped(),
        if report.skipped() == 1 { "" } else { "s" },
        report.binary.len(),
        report.unreadable.len(),
        report.not_regular.len(),
        report.failed.len()
    );
    if report.retried > 0 {
        let _ = writeln!(
            err,
            "retried {} batch{} after a worker failed",
            report.retried,
            if report.retried == 1 { "" } else { "es" }
        );
    }
    if let Some(why) = &report.fewer_workers {
        let _ = writeln!(
            err,
            "indexer: ran only {} worker{} (could not start more: {why})",
            report.workers,
            if report.workers == 1 { "" } else { "s" }
        );
    }
    if report.streamed {
        let combined = match report.combined {
            0 => String::new(),
            n => format!(" ({n} merged into larger ones as the build went)"),
        };
        let _ = writeln!(
            err,
            "the index outgrew --memory: {} of {} runs went to disk{combined}, and all were merged there",
            report.spilled, report.runs
        );
    }
    print_failed(&mut err, report, verbose);
    if verbose {
        print_skipped(&mut err, report);
    }
    if stats {
        print_timings(&mut err, report);
    }
}

/// The files a worker crashed on, a few by name (all with `verbose`).
fn print_failed(err: &mut impl Write, report: &BuildReport, verbose: bool) {
    if !report.failed.is_empty() {
        let shown: Vec<String> = report
            .failed
            .iter()
            .take(FAILED_SHOWN)
            .map(|p| output::escape_controls(&p.path).into_owned())
            .collect();
        let more = report.failed.len().saturating_sub(FAILED_SHOWN);
        let _ = writeln!(
            err,
            "indexer: {} file{} could not be indexed (a worker crashed on each, twice): {}{}",
            report.failed.len(),
            if report.failed.len() == 1 { "" } else { "s" },
            shown.join(", "),
            match (more, verbose) {
                (0, _) => String::new(),
                (n, true) => format!(" and {n} more"),
                (n, false) => format!(" and {n} more (--verbose lists them)"),
            }
        );
    }
}

/// `--verbose`: every file not indexed, and why.
fn print_skipped(err: &mut impl Write, report: &BuildReport) {
    let escape = |text: &str| output::escape_controls(text).into_owned();
    for path in &report.binary {
        let _ = writeln!(err, "  binary: {}", escape(path));
    }
    for p in &report.unreadable {
        let _ = writeln!(
            err,
            "  unreadable: {}: {}",
            escape(&p.path),
            escape(&p.message)
        );
    }
    for p in &report.not_regular {
        let _ = writeln!(err, "  not regular: {}: {}", escape(&p.path), p.message);
    }
    for p in &report.failed {
        let _ = writeln!(err, "  failed: {}: {}", escape(&p.path), escape(&p.message));
    }
}

/// `--stats`: CPU time per phase, summed over the workers.
fn print_timings(err: &mut impl Write, report: &BuildReport) {
    let t = &report.timings;
    let tokenize = t
        .work
        .saturating_sub(t.read + t.record + t.runs + t.send + t.delay)
        .as_secs_f64();
    let _ = writeln!(
        err,
        "time: walk {:.3} s; workers (summed): read {:.3} s, tokenize {tokenize:.3} s, record {:.3} s, sort+encode runs {:.3} s, send {:.3} s; parent: receive {:.3} s, merge {:.3} s; total {:.3} s; {} batches, {} runs ({:.1} MB to merge in memory)",
        t.walk.as_secs_f64(),
        t.read.as_secs_f64(),
        t.record.as_secs_f64(),
        t.runs.as_secs_f64(),
        t.send.as_secs_f64(),
        t.transfer.as_secs_f64(),
        t.merge.as_secs_f64(),
        t.total.as_secs_f64(),
        report.batches,
        report.runs,
        report.held as f64 / 1e6
    );
}

fn answer_queries(
    view: &View,
    queries: &[answer::Request],
    args: &Args,
    layout: &output::Layout,
    paths: &answer::PathFilter,
) -> i32 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let mut json = output::JsonSink::new(args.text.then_some(layout.tree.as_deref()));
    let headed = queries.len() > 1 && !args.json && layout.heading;
    let narrowing = answer::Narrowing {
        paths,
        case_sensitive: args.case_sensitive,
        tree: layout.tree.as_deref(),
    };
    let mut matched = false;
    for (n, request) in queries.iter().enumerate() {
        let text = request.text.as_str();
        if headed {
            let separator = if n == 0 { "" } else { "\n" };
            if let Err(e) = writeln!(out, "{separator}query {text:?}:") {
                return output_error(e);
            }
        }
        if let Some(note) = &request.note {
            let _ = out.flush();
            eprintln!("{note}");
        }
        let started = Instant::now();
        let words = match answer::find(view, request, &narrowing) {
            Ok(words) => words,
            Err(answer::FindError::Input(e)) => return fail(EXIT_BAD_INPUT, e),
            Err(answer::FindError::Damaged) => return fail(EXIT_BAD_INPUT, damaged_message(args)),
        };
        let elapsed = started.elapsed();
        if args.stats {
            eprintln!(
                "query {text:?}: {} words in {:.3} ms",
                words.len(),
                elapsed.as_secs_f64() * 1e3
            );
        }
        if words.is_empty() {
            // Said on stderr, as grep leaves stdout to matches.
            let _ = out.flush();
            say_no_match(view, request, args.stats);
            continue;
        }
        matched = true;
        match write_answer(&mut out, view, args, layout, &mut json, text, &words) {
            Err(e) if output::is_damaged(&e) => {
                return fail(EXIT_BAD_INPUT, damaged_message(args));
            }
            Err(e) => return output_error(e),
            Ok(()) => {}
        }
    }
    match out.flush() {
        Ok(()) if matched => EXIT_OK,
        Ok(()) => EXIT_NO_MATCH,
        Err(e) => output_error(e),
    }
}

/// Prints one query's answer as the arguments ask. Whatever is printed is
/// read, and so verified, before printing starts: a damaged index is
/// reported, not half an answer (the bounded human view reads only the
/// locations it shows).
fn write_answer(
    out: &mut impl Write,
    view: &View,
    args: &Args,
    layout: &output::Layout,
    json: &mut output::JsonSink,
    text: &str,
    words: &[answer::Entry],
) -> io::Result<()> {
    let full = args.json || args.all || args.files_with_matches;
    if full && !args.count {
        view.verify(&answer::Entry::lazy_hits(words))
            .map_err(output::damaged)?;
    }
    if args.count {
        output::write_counts(out, view, words, args.json.then_some(text))
    } else if args.files_with_matches {
        output::write_files(out, view, layout, words)
    } else if args.json {
        json.write(out, view, text, words)
    } else {
        let answer = output::HumanAnswer::prepare(view, layout, text, words, args.all)
            .map_err(output::damaged)?;
        answer.write(out, view, layout, &mut output::Shown::default())
    }
}

/// `no words match "x"; did you mean ...?` on stderr.
fn say_no_match(view: &View, request: &answer::Request, stats: bool) {
    let started = Instant::now();
    let suggestion = did_you_mean(view, request);
    if stats {
        eprintln!(
            "suggestions in {:.3} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    eprintln!("no words match {:?}{suggestion}", request.text);
}

/// Suggestions at most this many edits from a word that matched nothing.
const SUGGESTION_DISTANCE: usize = 2;
/// How many suggestions are offered.
const SUGGESTIONS: usize = 3;

/// `; did you mean a, b?` with the indexed words closest to a one-word
/// request that matched nothing (closest first, then most frequent), or
/// nothing.
pub(crate) fn did_you_mean(view: &View, request: &answer::Request) -> String {
    let [(text, _)] = request.terms.as_slice() else {
        return String::new();
    };
    let word = text.strip_prefix('=').unwrap_or(text).to_lowercase();
    if word.contains(['*', '/']) || word.len() > 64 {
        return String::new();
    }
    // The distance `similar_words` found, per layer (called in layer order).
    let mut distances: Vec<std::collections::HashMap<usize, usize>> = Vec::new();
    let hits = view.hits(|vocabulary| {
        let found = similar_words(vocabulary, word.as_bytes(), SUGGESTION_DISTANCE);
        let ids: Vec<usize> = found.iter().map(|&(id, _)| id).collect();
        distances.push(found.into_iter().collect());
        ids
    });
    // A suggestion is a courtesy: a damaged index offers none (the
    // answer itself was read whole).
    let Ok(hits) = hits else {
        return String::new();
    };
    let mut near: Vec<(usize, u64, String)> = Vec::new();
    for hit in &hits {
        let distance = hit
            .parts()
            .find_map(|(layer, id)| distances.get(layer)?.get(&id).copied())
            .unwrap_or(SUGGESTION_DISTANCE);
        let (Ok(count), Ok(word)) = (view.count(hit), view.word(hit)) else {
            return String::new();
        };
        near.push((distance, count, word.into_owned()));
    }
    near.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let shown: Vec<String> = near
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, _, w)| output::escape_controls(&w).into_owned())
        .collect();
    match shown.is_empty() {
        true => String::new(),
        false => format!("; did you mean {}?", shown.join(", ")),
    }
}

/// `--type-list`: each type rg knows with its globs, as rg prints them.
fn print_type_list() -> i32 {
    let mut out = io::stdout().lock();
    for (name, globs) in answer::PathFilter::type_list() {
        if let Err(e) = writeln!(out, "{name}: {}", globs.join(", ")) {
            return output_error(e);
        }
    }
    EXIT_OK
}

/// What to say when a saved index failed a checksum while answering.
pub(crate) fn damaged_message(args: &Args) -> String {
    let file = args
        .index
        .as_ref()
        .or(args.save.as_ref())
        .map_or_else(|| "the index".to_string(), |f| f.display().to_string());
    format!(
        "{file} is damaged (a checksum failed as it was read); rebuild it with `indexer DIR --save {file}`"
    )
}

/// A closed pipe (`| head`) ends the output quietly, as in rg; any other
/// write error is reported.
fn output_error(e: io::Error) -> i32 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        EXIT_OK
    } else {
        fail(EXIT_FAILURE, format!("cannot write output: {e}"))
    }
}

/// Decimal units, as indicatif draws them in the progress line too.
fn human_bytes(bytes: u64) -> String {
    indicatif::DecimalBytes(bytes).to_string()
}
