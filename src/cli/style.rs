//! How an answer looks on a terminal: colours (ripgrep's palette and its
//! `--colors` syntax), and paths shown the way the user can open them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// What `--colors TYPE:ATTRIBUTE:VALUE` may style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Line,
    Column,
    Match,
}

/// One part's look: an SGR sequence, empty for plain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Spec {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    underline: bool,
    intense: bool,
}

impl Spec {
    fn sgr(&self) -> String {
        let mut codes: Vec<String> = Vec::new();
        if self.bold {
            codes.push("1".into());
        }
        if self.underline {
            codes.push("4".into());
        }
        if let Some(c) = self.fg {
            codes.push(format!("{}", if self.intense { 90 } else { 30 } + c));
        }
        if let Some(c) = self.bg {
            codes.push(format!("{}", if self.intense { 100 } else { 40 } + c));
        }
        match codes.is_empty() {
            true => String::new(),
            false => format!("\x1b[{}m", codes.join(";")),
        }
    }
}

/// Colours for each part, or none at all.
#[derive(Debug, Clone)]
pub struct Colors {
    on: bool,
    specs: [Spec; 4],
}

impl Colors {
    /// ripgrep's defaults: path magenta, line number green, match bold red.
    fn defaults(on: bool) -> Colors {
        let fg = |c| Spec {
            fg: Some(c),
            ..Spec::default()
        };
        Colors {
            on,
            specs: [
                fg(5),
                fg(2),
                Spec::default(),
                Spec {
                    bold: true,
                    ..fg(1)
                },
            ],
        }
    }

    /// Colours as `--color WHEN` and `NO_COLOR` decide, changed by each
    /// `--colors` spec in turn.
    pub fn choose(when: ColorWhen, specs: &[String]) -> Result<Colors, String> {
        let on = match when {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        let mut colors = Colors::defaults(on);
        for spec in specs {
            colors.apply(spec)?;
        }
        Ok(colors)
    }

    fn apply(&mut self, text: &str) -> Result<(), String> {
        let bad = |why: &str| {
            format!("--colors {text:?}: {why} (say path:fg:magenta, match:style:bold or line:none)")
        };
        let mut pieces = text.split(':');
        let part = match pieces.next().unwrap_or_default() {
            "path" => Part::Path,
            "line" => Part::Line,
            "column" => Part::Column,
            "match" => Part::Match,
            _ => return Err(bad("the type is one of path, line, column, match")),
        };
        let spec = &mut self.specs[part as usize];
        match (pieces.next(), pieces.next(), pieces.next()) {
            (Some("none"), None, None) => *spec = Spec::default(),
            (Some(which @ ("fg" | "bg")), Some(value), None) => {
                let code = color_code(value).ok_or_else(|| bad("unknown colour"))?;
                match which {
                    "fg" => spec.fg = Some(code),
                    _ => spec.bg = Some(code),
                }
            }
            (Some("style"), Some(value), None) => match value {
                "bold" => spec.bold = true,
                "nobold" => spec.bold = false,
                "underline" => spec.underline = true,
                "nounderline" => spec.underline = false,
                "intense" => spec.intense = true,
                "nointense" => spec.intense = false,
                _ => return Err(bad("unknown style")),
            },
            _ => return Err(bad("expected TYPE:ATTRIBUTE:VALUE")),
        }
        Ok(())
    }

    /// `text` in `part`'s colours.
    pub fn paint(&self, part: Part, text: &str) -> String {
        let sgr = if self.on {
            self.specs[part as usize].sgr()
        } else {
            String::new()
        };
        match sgr.is_empty() {
            true => text.to_string(),
            false => format!("{sgr}{text}\x1b[0m"),
        }
    }
}

fn color_code(name: &str) -> Option<u8> {
    Some(match name {
        "black" => 0,
        "red" => 1,
        "green" => 2,
        "yellow" => 3,
        "blue" => 4,
        "magenta" => 5,
        "cyan" => 6,
        "white" => 7,
        _ => return None,
    })
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Where the paths of an answer are shown from: the indexed tree's folder
/// as the user can reach it from here.
pub fn shown_root(root: &Path, absolute: bool) -> PathBuf {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if absolute {
        return canonical;
    }
    let Ok(here) = std::env::current_dir().and_then(std::fs::canonicalize) else {
        return canonical;
    };
    // Below the current folder: relative to it (as rg shows a path given
    // to it); beside it: through `..`; elsewhere: absolute.
    if let Ok(below) = canonical.strip_prefix(&here) {
        return below.to_path_buf();
    }
    if let Some(parent) = here.parent().filter(|p| p.parent().is_some()) {
        if let Ok(beside) = canonical.strip_prefix(parent) {
            return Path::new("..").join(beside);
        }
    }
    canonical
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_change_the_palette_and_bad_ones_are_refused() {
        let mut colors = Colors::defaults(true);
        assert_eq!(colors.paint(Part::Path, "p"), "\x1b[35mp\x1b[0m");
        assert_eq!(colors.paint(Part::Match, "m"), "\x1b[1;31mm\x1b[0m");
        assert_eq!(colors.paint(Part::Column, "c"), "c");
        colors.apply("match:fg:blue").unwrap();
        colors.apply("match:style:nobold").unwrap();
        colors.apply("line:none").unwrap();
        assert_eq!(colors.paint(Part::Match, "m"), "\x1b[34mm\x1b[0m");
        assert_eq!(colors.paint(Part::Line, "1"), "1");
        for bad in [
            "word:fg:red",
            "path:fg:purple",
            "path:fg",
            "match:style:blink",
        ] {
            assert!(colors.apply(bad).is_err(), "{bad}");
        }
        assert_eq!(Colors::defaults(false).paint(Part::Match, "m"), "m");
    }
}
