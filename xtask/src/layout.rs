//! `cargo xtask layout`: where the code's size and tangles are, to plan and
//! then check a restructuring: the longest files, the longest functions,
//! and the import circles between a crate's modules (at the top level, and
//! one level deeper). Source only, no compiler: it reads the files with a
//! small scanner ([`scan`]), so it runs in a blink on any tree, even one
//! that does not build halfway through a move.

mod graph;
mod scan;

use std::{
    collections::{BTreeMap, BTreeSet},
    env, fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::process::root;
use graph::{Edge, Graph, Module, Site, Via};
use scan::Scan;

/// One line of the report. The report is built whole and written at once,
/// so that piping it into `head` ends it quietly rather than in a panic.
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

const LONGEST_FILES: usize = 10;
const LONGEST_FUNCTIONS: usize = 15;

/// Workspace members whose code is not the product: the developer commands
/// and the integration test harness.
const NOT_SCANNED: [&str; 2] = ["xtask", "tests"];

/// One `.rs` file under a crate's source directory.
struct SourceFile {
    /// As printed: relative to the workspace root, or to the current
    /// directory, when inside it.
    display: String,
    /// Which module graph the file is in: the crate's, or one `src/bin`
    /// target's (each is a crate of its own, with its own `crate::`).
    target: String,
    /// Its module, from its place in the directory tree.
    module: Module,
    lines: usize,
    /// The whole file is test code: named `tests.rs`, under a `tests/`
    /// directory, `#![cfg(test)]`, or declared `#[cfg(test)] mod`.
    test: bool,
    scan: Scan,
}

impl SourceFile {
    fn code_lines(&self) -> usize {
        if self.test {
            0
        } else {
            self.lines.saturating_sub(self.scan.test_lines)
        }
    }

    fn test_lines(&self) -> usize {
        self.lines - self.code_lines()
    }
}

pub fn layout(dirs: &[PathBuf], no_tests: bool, deny_cycles: bool) -> Result<()> {
    let sources: Vec<PathBuf> = if dirs.is_empty() {
        workspace_members()?
            .into_iter()
            .filter(|member| !NOT_SCANNED.contains(&member.as_str()))
            .map(|member| root().join(member).join("src"))
            .collect()
    } else {
        dirs.iter()
            .map(|dir| source_dir(dir))
            .collect::<Result<_>>()?
    };
    let mut files = Vec::new();
    for src in &sources {
        read_crate(src, &mut files)?;
    }
    mark_declared_tests(&mut files);

    let crates: Vec<String> = sources
        .iter()
        .map(|src| display_path(src.parent().unwrap_or(src)))
        .collect();
    let mut out = String::new();
    let lines: usize = files.iter().map(|file| file.lines).sum();
    let test_lines: usize = files.iter().map(SourceFile::test_lines).sum();
    say!(
        out,
        "Layout of {}: {} files, {lines} lines ({test_lines} of them tests){}",
        crates.join(", "),
        files.len(),
        if no_tests { "; tests left out" } else { "" },
    );
    say!(out);
    longest_files(&mut out, &files, no_tests);
    say!(out);
    longest_functions(&mut out, &files, no_tests);
    say!(out);
    let top_level = cycles(&mut out, &files, 1, no_tests);
    say!(out);
    let second_level = cycles(&mut out, &files, 2, no_tests);
    tree_notes(&mut out, &files);
    match io::stdout().lock().write_all(out.as_bytes()) {
        // Piped into `head`: the reader has seen enough.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {}
        result => result.context("writing the report")?,
    }

    if deny_cycles && top_level + second_level > 0 {
        let circles = count(top_level + second_level, "import circle");
        bail!("{circles} between modules (--deny-cycles)");
    }
    Ok(())
}

/// The `members` of the workspace manifest, read by hand: a TOML parser
/// for one array is not worth a dependency.
fn workspace_members() -> Result<Vec<String>> {
    let path = root().join("Cargo.toml");
    let manifest =
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let start = manifest
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            line.strip_prefix("members")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(offset, _)| offset)
        .with_context(|| format!("no workspace members in {}", path.display()))?;
    let array = &manifest[start..];
    let array = &array[..array.find(']').unwrap_or(array.len())];
    Ok(array
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect())
}

/// A crate directory as given (`pktd-daemon`, or its `src`), relative to the
/// current directory or else to the workspace root.
fn source_dir(dir: &Path) -> Result<PathBuf> {
    let candidates = [env::current_dir()?.join(dir), root().join(dir)];
    for dir in candidates {
        if dir.join("src").is_dir() {
            return Ok(dir.join("src"));
        }
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    bail!("{} is not a crate directory", dir.display())
}

/// A path relative to the workspace root, or else to the current directory
/// (a crate exported elsewhere, e.g. an older revision by `git archive`).
fn display_path(path: &Path) -> String {
    let cwd = env::current_dir().unwrap_or_default();
    path.strip_prefix(root())
        .or_else(|_| path.strip_prefix(&cwd))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.rs` file under `src`, in path order, scanned.
fn read_crate(src: &Path, files: &mut Vec<SourceFile>) -> Result<()> {
    let label = display_path(src.parent().unwrap_or(src));
    let mut paths = Vec::new();
    walk(src, &mut paths)?;
    paths.sort();
    for path in paths {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let relative = path.strip_prefix(src).unwrap_or(&path);
        let components: Vec<String> = relative
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        let (target, module) = place(&label, &components);
        let scan = scan::scan(&text);
        let test = scan.cfg_test
            || relative.file_stem().is_some_and(|stem| stem == "tests")
            || components[..components.len() - 1]
                .iter()
                .any(|dir| dir == "tests");
        files.push(SourceFile {
            display: display_path(&path),
            target,
            module,
            lines: text.lines().count(),
            test,
            scan,
        });
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The target and module of the file at `components` below `src`:
/// `lib.rs` and `main.rs` are the crate root, `a.rs` and `a/mod.rs` are
/// `a`, `a/b.rs` is `a::b`; `bin/x.rs` and `bin/x/main.rs` are the root of
/// target `bin/x`, and `bin/x/y.rs` its module `y`.
fn place(label: &str, components: &[String]) -> (String, Module) {
    let (target, rest) = match components {
        [bin, name, rest @ ..] if bin == "bin" && !rest.is_empty() => {
            (format!("{label}/src/bin/{name}"), rest)
        }
        [bin, file] if bin == "bin" => {
            let name = file.strip_suffix(".rs").unwrap_or(file);
            (format!("{label}/src/bin/{name}"), &[][..])
        }
        _ => (label.to_owned(), components),
    };
    let mut module: Module = rest.to_vec();
    if let Some(last) = module.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last);
        let is_root = module.is_empty() && (stem == "lib" || stem == "main");
        if stem != "mod" && !is_root {
            module.push(stem.to_owned());
        }
    }
    (target, module)
}

/// Files whose module, or a parent of it, is declared `#[cfg(test)] mod`.
fn mark_declared_tests(files: &mut [SourceFile]) {
    let declared: BTreeSet<(String, Module)> = files
        .iter()
        .flat_map(|file| {
            file.scan
                .modules
                .iter()
                .filter(|decl| decl.test)
                .map(|decl| (file.target.clone(), [&file.module[..], &decl.path].concat()))
        })
        .collect();
    for file in files {
        let under_test = (1..=file.module.len())
            .any(|len| declared.contains(&(file.target.clone(), file.module[..len].to_vec())));
        file.test |= under_test;
    }
}

/// Files the compiler would not take as they are: no `mod` declares them,
/// or two files claim one module (`a.rs` and `a/mod.rs`), as happens
/// halfway through a move. Printed only if there are any; such files are
/// still counted above, since they are code someone is working on.
fn tree_notes(out: &mut String, files: &[SourceFile]) {
    let declared: BTreeSet<(&str, Module)> = files
        .iter()
        .flat_map(|file| {
            let target = file.target.as_str();
            let module = &file.module;
            (file.scan.modules.iter()).map(move |decl| (target, [&module[..], &decl.path].concat()))
        })
        .collect();
    let mut notes = Vec::new();
    let mut claims: BTreeMap<(&str, &Module), Vec<&str>> = BTreeMap::new();
    for file in files.iter().filter(|file| !file.module.is_empty()) {
        if !declared.contains(&(file.target.as_str(), file.module.clone())) {
            notes.push(format!("{}: no `mod` declares it", file.display));
        }
        claims
            .entry((&file.target, &file.module))
            .or_default()
            .push(&file.display);
    }
    for ((_, module), paths) in claims {
        if paths.len() > 1 {
            let module = graph::display(module);
            notes.push(format!("{}: all are module {module}", paths.join(", ")));
        }
    }
    if notes.is_empty() {
        return;
    }
    say!(out);
    say!(out, "Source tree notes");
    for note in notes {
        say!(out, "  {note}");
    }
}

/// "1 edge", "2 edges".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A right-aligned count column, then text columns padded to their widest.
fn print_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [header.iter().map(|cell| cell.to_string()).collect()]
        .iter()
        .chain(rows)
    {
        let mut line = String::from(" ");
        for (column, cell) in row.iter().enumerate() {
            let width = widths[column];
            if column == 0 {
                line.push_str(&format!(" {cell:>width$}"));
            } else {
                line.push_str(&format!("  {cell:<width$}"));
            }
        }
        say!(out, "{}", line.trim_end());
    }
}

fn longest_files(out: &mut String, files: &[SourceFile], no_tests: bool) {
    let mut ranked: Vec<&SourceFile> = files
        .iter()
        .filter(|file| !(no_tests && file.test))
        .collect();
    let size = |file: &SourceFile| {
        if no_tests {
            file.code_lines()
        } else {
            file.lines
        }
    };
    ranked.sort_by(|a, b| {
        size(b)
            .cmp(&size(a))
            .then_with(|| a.display.cmp(&b.display))
    });
    ranked.truncate(LONGEST_FILES);
    if no_tests {
        say!(
            out,
            "Longest files (lines outside test code; test files left out)"
        );
        let rows: Vec<Vec<String>> = ranked
            .iter()
            .map(|file| vec![file.code_lines().to_string(), file.display.clone()])
            .collect();
        print_table(out, &["lines", "file"], &rows);
    } else {
        say!(out, "Longest files (lines; of which in test code)");
        let rows: Vec<Vec<String>> = ranked
            .iter()
            .map(|file| {
                vec![
                    file.lines.to_string(),
                    file.test_lines().to_string(),
                    file.display.clone(),
                ]
            })
            .collect();
        print_table(out, &["lines", "tests", "file"], &rows);
    }
}

fn longest_functions(out: &mut String, files: &[SourceFile], no_tests: bool) {
    let mut ranked: Vec<(&SourceFile, &scan::Function)> = files
        .iter()
        .flat_map(|file| file.scan.functions.iter().map(move |f| (file, f)))
        .filter(|(file, function)| !(no_tests && (file.test || function.test)))
        .collect();
    ranked.sort_by(|(a_file, a), (b_file, b)| {
        b.lines
            .cmp(&a.lines)
            .then_with(|| a_file.display.cmp(&b_file.display))
            .then_with(|| a.line.cmp(&b.line))
    });
    ranked.truncate(LONGEST_FUNCTIONS);
    say!(
        out,
        "Longest functions (lines from `fn` to its closing brace{})",
        if no_tests { "; test code left out" } else { "" }
    );
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .map(|(file, function)| {
            let mut name = function.name.clone();
            if file.test || function.test {
                name.push_str("  [test]");
            }
            vec![
                function.lines.to_string(),
                format!("{}:{}", file.display, function.line),
                name,
            ]
        })
        .collect();
    print_table(out, &["lines", "location", "function"], &rows);
}

/// Build each target's graph at `depth` and print its cycles; returns how
/// many there are.
fn cycles(out: &mut String, files: &[SourceFile], depth: usize, no_tests: bool) -> usize {
    let level = if depth == 1 {
        "top-level modules"
    } else {
        "second-level modules (one level deeper, e.g. capture::attachment)"
    };
    say!(
        out,
        "Import circles between {level}{}",
        if no_tests { "; test code left out" } else { "" }
    );
    let mut targets: BTreeMap<&str, Vec<&SourceFile>> = BTreeMap::new();
    for file in files {
        targets.entry(&file.target).or_default().push(file);
    }
    let mut total = 0;
    for (target, files) in targets {
        let graph = build_graph(&files, depth, no_tests);
        let cycles = graph.cycles();
        total += cycles.len();
        say!(
            out,
            "  {target}: {}, {}, {}",
            count(graph.nodes.len(), "module"),
            count(graph.edges.len(), "edge"),
            match cycles.len() {
                0 => "no circles".to_owned(),
                n => count(n, "circle"),
            }
        );
        for (number, cycle) in cycles.iter().enumerate() {
            let members: Vec<String> = cycle.iter().map(|node| graph::display(node)).collect();
            say!(out, "    circle {}: {}", number + 1, members.join(", "));
            let rows: Vec<Vec<String>> = graph
                .edges_within(cycle)
                .map(|(from, to, edge)| {
                    let only = match edge.via {
                        Via::Code => "",
                        Via::Reexport => "  (pub use only)",
                        Via::Test => "  (test code only)",
                    };
                    vec![
                        format!("{} -> {}", graph::display(from), graph::display(to)),
                        format!("{}:{}{only}", edge.site.file, edge.site.line),
                    ]
                })
                .collect();
            let width = rows.iter().map(|row| row[0].len()).max().unwrap_or(0);
            for row in rows {
                say!(out, "      {:<width$}  {}", row[0], row[1]);
            }
        }
    }
    total
}

/// One target's module graph at `depth`: every module that has a file is a
/// node, and every mention that resolves to another node is an edge.
fn build_graph(files: &[&SourceFile], depth: usize, no_tests: bool) -> Graph {
    let mut modules: BTreeSet<Module> = BTreeSet::new();
    for file in files {
        for len in 0..=file.module.len() {
            modules.insert(file.module[..len].to_vec());
        }
        for decl in &file.scan.modules {
            modules.insert([&file.module[..], &decl.path].concat());
        }
    }
    let mut graph = Graph::default();
    for file in files {
        if no_tests && file.test {
            continue;
        }
        graph.add_node(graph::node(&file.module, depth, &modules));
        for mention in &file.scan.mentions {
            if no_tests && mention.test {
                continue;
            }
            let from = [&file.module[..], &mention.module].concat();
            let Some(to) = graph::resolve(&from, &mention.path, &modules) else {
                continue;
            };
            let via = if file.test || mention.test {
                Via::Test
            } else if mention.reexport {
                Via::Reexport
            } else {
                Via::Code
            };
            let site = Site {
                file: file.display.clone(),
                line: mention.line,
            };
            graph.add_edge(
                graph::node(&from, depth, &modules),
                graph::node(&to, depth, &modules),
                Edge { via, site },
            );
        }
    }
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| part.to_string()).collect()
    }

    #[test]
    fn a_crate_dir_gives_its_src() {
        let src = source_dir(Path::new("xtask")).unwrap();
        assert_eq!(src, root().join("xtask/src"));
        assert_eq!(source_dir(&src).unwrap(), src);
        assert!(source_dir(Path::new("no-such-crate")).is_err());
    }

    #[test]
    fn workspace_members_are_read() {
        let members = workspace_members().unwrap();
        assert!(
            members.iter().any(|member| member == "xtask"),
            "{members:?}"
        );
        assert!(!members.iter().any(|member| member.contains('=')));
    }

    #[test]
    fn files_map_to_modules() {
        let place = |path: &str| {
            let (target, module) = place("c", &strings(&path.split('/').collect::<Vec<_>>()));
            (target, module.join("::"))
        };
        assert_eq!(place("lib.rs"), ("c".into(), "".into()));
        assert_eq!(place("main.rs"), ("c".into(), "".into()));
        assert_eq!(place("capture/mod.rs"), ("c".into(), "capture".into()));
        assert_eq!(
            place("capture/attachment.rs"),
            ("c".into(), "capture::attachment".into())
        );
        assert_eq!(
            place("policy/tests.rs"),
            ("c".into(), "policy::tests".into())
        );
        assert_eq!(place("bin/tool.rs"), ("c/src/bin/tool".into(), "".into()));
        assert_eq!(
            place("bin/perf/main.rs"),
            ("c/src/bin/perf".into(), "".into())
        );
        assert_eq!(
            place("bin/perf/wire.rs"),
            ("c/src/bin/perf".into(), "wire".into())
        );
    }

    /// A small crate: capture ↔ session through a `use` inside braces, a
    /// wider circle through netns that only a test closes, and at the second
    /// level capture ↔ capture::attachment through a re-export and `super::`.
    #[test]
    fn a_synthetic_crate_has_its_circles() {
        let file = |path: &str, src: &str| {
            let components = strings(&path.split('/').collect::<Vec<_>>());
            let (target, module) = place("c", &components);
            SourceFile {
                display: format!("c/src/{path}"),
                target,
                module,
                lines: src.lines().count(),
                test: false,
                scan: scan::scan(src),
            }
        };
        let files = [
            file(
                "lib.rs",
                "mod capture;\nmod session;\nmod netns;\npub use capture::Ring;",
            ),
            file(
                "capture/mod.rs",
                "mod attachment;\npub use attachment::Attachment;\npub struct Ring;",
            ),
            file(
                "capture/attachment.rs",
                "use super::Ring;\n\
                 use crate::{netns::Netns, session::{self, Session}};\n\
                 // use crate::policy::Nothing;\n\
                 pub struct Attachment(Ring, \"crate::x::y\");",
            ),
            file("session.rs", "pub fn f() { let _ = crate::capture::Ring; }"),
            file(
                "netns.rs",
                "#[cfg(test)]\nmod tests {\n    use crate::session::f;\n}",
            ),
        ];
        let files: Vec<&SourceFile> = files.iter().collect();
        let show = |graph: &Graph| -> Vec<String> {
            graph
                .cycles()
                .iter()
                .flat_map(|cycle| graph.edges_within(cycle))
                .map(|(from, to, edge)| {
                    format!(
                        "{} -> {} {}:{} {:?}",
                        graph::display(from),
                        graph::display(to),
                        edge.site.file,
                        edge.site.line,
                        edge.via,
                    )
                })
                .collect()
        };
        // The test in netns closes a wider circle; without tests it is gone.
        let top = build_graph(&files, 1, false);
        assert_eq!(
            show(&top),
            [
                "capture -> netns c/src/capture/attachment.rs:2 Code",
                "capture -> session c/src/capture/attachment.rs:2 Code",
                "netns -> session c/src/netns.rs:3 Test",
                "session -> capture c/src/session.rs:1 Code"
            ]
        );
        let edges: Vec<String> = top
            .edges
            .keys()
            .map(|(from, to)| format!("{}->{}", graph::display(from), graph::display(to)))
            .collect();
        assert_eq!(
            edges,
            [
                "crate root->capture",
                "capture->netns",
                "capture->session",
                "netns->session",
                "session->capture"
            ]
        );
        assert_eq!(
            show(&build_graph(&files, 1, true)),
            [
                "capture -> session c/src/capture/attachment.rs:2 Code",
                "session -> capture c/src/session.rs:1 Code"
            ]
        );

        let second = build_graph(&files, 2, false);
        assert_eq!(
            show(&second),
            [
                "capture -> capture::attachment c/src/capture/mod.rs:2 Reexport",
                "capture::attachment -> capture c/src/capture/attachment.rs:1 Code",
                "capture::attachment -> session c/src/capture/attachment.rs:2 Code",
                "session -> capture c/src/session.rs:1 Code"
            ]
        );
    }
}
