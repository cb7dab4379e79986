//! pprocess's ray tracer demo on the runtime: one scene, its rows cut into
//! bands, each band rendered in a forked child, the picture the same bytes
//! whichever way the work is spread.
//!
//! ```text
//! cargo run --release --example raytracer -- [--workers N] [--size 1280x720]
//!     [--mode exchange|pmap|queue|reusable] [-o scene.png|scene.tif]
//! ```
//!
//! The CPU-bound counterpart of the indexer (which is I/O and memory bound).
//! Each `--mode` spreads the bands with a different part of
//! [`indexer::parallel`], as pprocess's PyGmy variants did:
//!
//! * `exchange`: an [`Exchange`] with a limit; every band is `start`ed at
//!   once and waits in the Exchange's queue for room; rows are stored as
//!   their messages arrive.
//! * `pmap`: [`pmap`], results in band order (on a terminal, in rounds of
//!   a few bands per worker, so the progress bar moves between them).
//! * `queue`: a [`Queue`], results in arrival order.
//! * `reusable`: `N` long-lived children, each fed one band at a time over
//!   its channel until the parent closes it.
//!
//! A child that dies takes its band with it; after the first pass, every
//! missing band is rendered once more the same way, and a band lost twice
//! ends the run with an error. The progress bar is drawn from the parent's
//! poll loop (no thread exists at fork).

mod scene;
mod trace;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indexer::parallel::{self, pmap, start, Channel, Event, Exchange, Pid, Queue};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Rows per band: small enough that two workers stay busy to the end.
const BAND_ROWS: u32 = 8;
/// Largest width or height accepted.
const MAX_SIDE: u32 = 16384;
/// Most workers accepted.
const MAX_WORKERS: usize = 256;
/// Test hook: the child rendering this band the first time kills itself
/// with SIGKILL, as an out-of-memory killer would.
const KILL_BAND_VARIABLE: &str = "RAYTRACER_KILL_BAND";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Exchange,
    Pmap,
    Queue,
    Reusable,
}

/// Renders pprocess's ray tracer scene with forked workers.
#[derive(Debug, Parser)]
#[command(name = "raytracer")]
struct Args {
    /// Worker processes rendering at once [default: the number of cores].
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Image size, WIDTHxHEIGHT, each 1 to 16384.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Which part of the runtime spreads the bands.
    #[arg(long, value_enum, default_value = "exchange")]
    mode: Mode,
    /// Output image: PNG or TIFF by its extension.
    #[arg(long, short = 'o', default_value = "scene.png")]
    output: PathBuf,
}

/// A user's mistake: one line, exit 2.
struct Usage(String);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Job {
    band: u32,
    /// 0 the first time the band is rendered, 1 the second.
    attempt: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Rendered {
    band: u32,
    #[serde(with = "serde_bytes")]
    pixels: Vec<u8>,
}

/// Runs in the child.
fn render(job: Job) -> Rendered {
    if job.attempt == 0 && kill_band() == Some(job.band) {
        // Best effort: if raise fails, the band simply renders.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    let first = job.band * BAND_ROWS;
    let rows = first..(first + BAND_ROWS).min(job.height);
    Rendered {
        band: job.band,
        pixels: trace::render_rows(&scene::scene(), job.width, job.height, rows),
    }
}

fn kill_band() -> Option<u32> {
    std::env::var(KILL_BAND_VARIABLE).ok()?.parse().ok()
}

/// In the child: a result that cannot be sent is a panic, which the
/// runtime reports to the parent.
fn deliver<Rx>(channel: &mut Channel<Rendered, Rx>, rendered: &Rendered) {
    if let Err(error) = channel.send(rendered) {
        panic!("could not send band {} home: {error}", rendered.band);
    }
}

/// The bands rendered so far, and what went wrong with the others.
struct Canvas {
    bands: Vec<Option<Vec<u8>>>,
    failures: Vec<String>,
    progress: ProgressBar,
}

impl Canvas {
    fn store(&mut self, rendered: Rendered) {
        if let Some(slot) = self.bands.get_mut(rendered.band as usize) {
            if slot.is_none() {
                self.progress.inc(1);
            }
            *slot = Some(rendered.pixels);
        }
    }

    fn fail(&mut self, error: impl std::fmt::Display) {
        self.failures.push(error.to_string());
    }

    fn missing(&self) -> Vec<u32> {
        (0..self.bands.len() as u32)
            .filter(|&b| self.bands[b as usize].is_none())
            .collect()
    }
}

fn run_exchange(jobs: Vec<Job>, workers: usize, canvas: &mut Canvas) -> parallel::Result<()> {
    let mut exchange: Exchange<(), Rendered> = Exchange::with_limit(workers);
    for job in jobs {
        exchange.start(
            |channel: &mut Channel<Rendered, ()>, job| deliver(channel, &render(job)),
            job,
        )?;
    }
    exchange.finish(|event| match event {
        Event::Message { value, .. } => canvas.store(value),
        Event::Finished { .. } => {}
        Event::Failed { error, .. } => canvas.fail(error),
    })
}

fn run_pmap(jobs: Vec<Job>, workers: usize, canvas: &mut Canvas) {
    // pmap returns when all its items are done: with a bar to draw, it is
    // called in rounds (each ending on its slowest band), else once.
    let round = match canvas.progress.is_hidden() {
        true => jobs.len().max(1),
        false => 8 * workers,
    };
    for round in jobs.chunks(round) {
        for result in pmap(render, round.to_vec(), workers) {
            match result {
                Ok(rendered) => canvas.store(rendered),
                Err(error) => canvas.fail(error),
            }
        }
    }
}

fn run_queue(jobs: Vec<Job>, workers: usize, canvas: &mut Canvas) -> parallel::Result<()> {
    let mut queue = Queue::with_limit(workers);
    for job in jobs {
        queue.start(move || render(job))?;
    }
    for result in queue {
        match result {
            Ok(rendered) => canvas.store(rendered),
            Err(error) => canvas.fail(error),
        }
    }
    Ok(())
}

fn run_reusable(jobs: Vec<Job>, workers: usize, canvas: &mut Canvas) -> parallel::Result<()> {
    let mut exchange: Exchange<Job, Rendered> = Exchange::new();
    for _ in 0..workers.min(jobs.len()) {
        let channel = start(
            |channel: &mut Channel<Rendered, Job>, ()| {
                // Until the parent closes its end: no more bands.
                while let Ok(job) = channel.receive() {
                    deliver(channel, &render(job));
                }
            },
            (),
        )?;
        exchange.add(channel);
    }
    let mut jobs = jobs.into_iter();
    let mut feed = |exchange: &mut Exchange<Job, Rendered>, pid: Pid, canvas: &mut Canvas| {
        let Some(channel) = exchange.channel(pid) else {
            return;
        };
        let sent = match jobs.next() {
            Some(job) => channel.send(&job),
            None => channel.close_send(),
        };
        if let Err(error) = sent {
            canvas.fail(error);
        }
    };
    for pid in exchange.pids() {
        feed(&mut exchange, pid, canvas);
    }
    while exchange.active() > 0 {
        for event in exchange.wait(None)? {
            match event {
                Event::Message { pid, value } => {
                    canvas.store(value);
                    feed(&mut exchange, pid, canvas);
                }
                Event::Finished { .. } => {}
                // Its band is missing; the others carry on with the rest.
                Event::Failed { error, .. } => canvas.fail(error),
            }
        }
    }
    Ok(())
}

fn render_pass(
    mode: Mode,
    jobs: Vec<Job>,
    workers: usize,
    canvas: &mut Canvas,
) -> parallel::Result<()> {
    match mode {
        Mode::Exchange => run_exchange(jobs, workers, canvas),
        Mode::Pmap => {
            run_pmap(jobs, workers, canvas);
            Ok(())
        }
        Mode::Queue => run_queue(jobs, workers, canvas),
        Mode::Reusable => run_reusable(jobs, workers, canvas),
    }
}

fn parse_size(text: &str) -> Result<(u32, u32), Usage> {
    let bad = || {
        Usage(format!(
            "--size must be WIDTHxHEIGHT, each 1 to {MAX_SIDE} (got '{text}')"
        ))
    };
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |s: &str| match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_SIDE).contains(&n) => Ok(n),
        _ => Err(bad()),
    };
    Ok((side(w)?, side(h)?))
}

fn format_of(path: &Path) -> Result<image::ImageFormat, Usage> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => Ok(image::ImageFormat::Png),
        Some("tif" | "tiff") => Ok(image::ImageFormat::Tiff),
        _ => Err(Usage(format!(
            "cannot tell the image format of '{}': name it .png, .tif or .tiff",
            path.display()
        ))),
    }
}

/// A temporary file beside `output`, made before rendering so that an
/// unwritable place is reported at once, and renamed over `output` when the
/// image is whole.
fn prepare_output(output: &Path) -> Result<tempfile::NamedTempFile, Usage> {
    let folder = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".raytracer-")
        // As any new file: 0666 less the umask, not tempfile's private 0600.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(folder)
        .map_err(|e| {
            // tempfile's message ends with its own temporary name, which means
            // nothing to the user (its PathError hides the OS error from source()).
            let message = e.to_string();
            let reason = message.split(" at path ").next().unwrap_or(&message);
            Usage(format!("cannot write '{}': {reason}", output.display()))
        })
}

/// Writes the picture. PNG is compressed fast: encoding runs in the parent
/// after every band is in, so its time is not shared among the workers.
fn encode(
    file: &std::fs::File,
    pixels: &[u8],
    width: u32,
    height: u32,
    format: image::ImageFormat,
) -> image::ImageResult<()> {
    use image::ImageEncoder;
    let mut out = std::io::BufWriter::new(file);
    let rgb = image::ExtendedColorType::Rgb8;
    match format {
        image::ImageFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(pixels, width, height, rgb)?,
        _ => image::codecs::tiff::TiffEncoder::new(&mut out)
            .write_image(pixels, width, height, rgb)?,
    }
    std::io::Write::flush(&mut out).map_err(image::ImageError::IoError)
}

fn progress_bar(bands: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(bands), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("rendering {bar:40} {pos}/{len} bands, {eta} left")
    {
        bar.set_style(style);
    }
    bar
}

fn run(args: Args) -> Result<(), (String, u8)> {
    let usage = |Usage(message)| (message, 2);
    let (width, height) = parse_size(&args.size).map_err(usage)?;
    let workers = args.workers.unwrap_or_else(parallel::available_cores);
    if !(1..=MAX_WORKERS).contains(&workers) {
        return Err((
            format!("--workers must be 1 to {MAX_WORKERS} (got {workers})"),
            2,
        ));
    }
    let format = format_of(&args.output).map_err(usage)?;
    let temporary = prepare_output(&args.output).map_err(usage)?;

    let began = Instant::now();
    let band_count = height.div_ceil(BAND_ROWS);
    let mut canvas = Canvas {
        bands: vec![None; band_count as usize],
        failures: Vec::new(),
        progress: progress_bar(u64::from(band_count)),
    };
    let jobs = |bands: Vec<u32>, attempt| -> Vec<Job> {
        bands
            .into_iter()
            .map(|band| Job {
                band,
                attempt,
                width,
                height,
            })
            .collect()
    };
    let runtime = |e: parallel::Error| (format!("cannot run the workers: {e}"), 1);
    render_pass(
        args.mode,
        jobs((0..band_count).collect(), 0),
        workers,
        &mut canvas,
    )
    .map_err(runtime)?;
    let missing = canvas.missing();
    if !missing.is_empty() {
        canvas.progress.suspend(|| {
            eprintln!(
                "raytracer: {} band(s) lost ({}); rendering them again",
                missing.len(),
                canvas.failures.join("; ")
            )
        });
        canvas.failures.clear();
        render_pass(args.mode, jobs(missing, 1), workers, &mut canvas).map_err(runtime)?;
    }
    canvas.progress.finish_and_clear();
    if let Some(&band) = canvas.missing().first() {
        return Err((
            format!("band {band} failed twice: {}", canvas.failures.join("; ")),
            1,
        ));
    }
    let took = began.elapsed();

    let pixels: Vec<u8> = canvas.bands.into_iter().flatten().flatten().collect();
    let hash = twox_hash::XxHash3_64::oneshot(&pixels);
    let cannot_write =
        |e: &dyn std::fmt::Display| (format!("cannot write '{}': {e}", args.output.display()), 1);
    encode(temporary.as_file(), &pixels, width, height, format).map_err(|e| cannot_write(&e))?;
    temporary
        .persist(&args.output)
        .map_err(|e| cannot_write(&e.error))?;
    // Say where the picture is, wherever the program was run from.
    let shown = std::fs::canonicalize(&args.output).unwrap_or(args.output);
    println!(
        "wrote {} ({width}x{height}, {band_count} bands, {workers} worker(s), {} mode) in {:.2} s; pixels xxh3 {hash:016x}",
        shown.display(),
        args.mode.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default(),
        took.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help, --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let text = error.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            let choices = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("[possible values"));
            let line = line.trim_start_matches("error: ");
            match choices {
                Some(choices) => eprintln!("raytracer: {line} {choices}"),
                None => eprintln!("raytracer: {line}"),
            }
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            eprintln!("raytracer: {message}");
            ExitCode::from(code)
        }
    }
}
