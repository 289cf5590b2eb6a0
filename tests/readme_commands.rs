//! Every command README.md shows, run, so the README cannot rot silently: the `sh` and `console`
//! code blocks line by line, and the `just …` commands in its text. `bramble` commands that work
//! offline on the EEPROM fixtures or the repository's recipes run for real (the output a
//! `console` block shows must appear); the others (they need the internet, an OS image, a disk
//! or root) must at least parse: clap checks every option and argument before it acts on
//! `--help`. `just` tasks run as `just --dry-run`, and the recipe `just lab` would build is
//! validated by bramble. A command naming a program no rule knows fails the test.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug)]
struct Shown {
    /// README.md's line.
    line: usize,
    command: String,
    /// The lines a `console` block shows after it.
    output: Vec<String>,
    /// Commands of one block share a folder (`sign` reads what `set` wrote).
    block: usize,
}

/// A trailing `# comment` off a shell line.
fn strip_comment(line: &str) -> &str {
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        if c == '#' && prev.is_whitespace() {
            return line[..i].trim_end();
        }
        prev = c;
    }
    line.trim_end()
}

fn readme_commands(text: &str) -> Vec<Shown> {
    let mut out: Vec<Shown> = Vec::new();
    let mut fence: Option<String> = None;
    let mut block = 0;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                None => {
                    block += 1;
                    Some(lang.trim().to_string())
                }
                Some(_) => None,
            };
            continue;
        }
        match fence.as_deref() {
            Some("sh") => {
                let command = strip_comment(line.trim());
                if !command.is_empty() {
                    out.push(Shown { line: line_no, command: command.into(), output: vec![], block });
                }
            }
            Some("console") => match line.strip_prefix("$ ") {
                Some(command) => {
                    out.push(Shown { line: line_no, command: strip_comment(command).into(), output: vec![], block })
                }
                None => out.last_mut().expect("a console block starts with a command").output.push(line.into()),
            },
            Some(_) => {}
            None => {
                // Inline `just …`: the odd pieces between backticks are code spans.
                for span in line.split('`').skip(1).step_by(2) {
                    if span == "just" || span.starts_with("just ") {
                        block += 1;
                        out.push(Shown { line: line_no, command: span.into(), output: vec![], block });
                    }
                }
            }
        }
    }
    out
}

/// The words of a command, once for each choice in its `[a|b]` options (`[optional]` parts
/// kept, `...` placeholders dropped).
fn variants(command: &str) -> Vec<Vec<String>> {
    let shell = command.split_whitespace().any(|w| w == "|" || w.contains(['"', '\'', '>', '<', '$']));
    assert!(!shell, "`{command}`: quote or shell syntax this test cannot run");
    let mut out = vec![Vec::new()];
    for w in command.split_whitespace() {
        let choices: Vec<String> = w
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split('|')
            .filter(|c| !c.is_empty() && *c != "..." && *c != "…")
            .map(String::from)
            .collect();
        if choices.is_empty() {
            continue;
        }
        out = out
            .into_iter()
            .flat_map(|done| {
                choices.iter().map(move |c| {
                    let mut v = done.clone();
                    v.push(c.clone());
                    v
                })
            })
            .collect();
    }
    out
}

/// The folder a block's commands run in: copies of the fixture images under the names the
/// README uses, and a bootconf.txt for `eeprom set --config`.
fn sandbox(dir: &Path) {
    let fx = eeprom_fixtures();
    for (name, from) in [
        ("pieeprom-2026-05-17.bin", "firmware-2711/default/pieeprom-2026-05-17.bin"),
        ("pieeprom-2026-05-26.bin", "firmware-2712/default/pieeprom-2026-05-26.bin"),
        ("bootconf.txt", "firmware-2711/default/pieeprom-2026-05-17.f21.bootconf.txt"),
    ] {
        std::fs::copy(fx.join(from), dir.join(name)).unwrap();
    }
}

/// `eeprom card` takes recovery.bin from beside the image: the one for the image's chip.
fn recovery_for(command: &[String], dir: &Path) {
    let chip = if command.iter().any(|w| w.contains("2026-05-26")) { "2712" } else { "2711" };
    let from = eeprom_fixtures().join(format!("firmware-{chip}/default/recovery.bin"));
    std::fs::copy(from, dir.join("recovery.bin")).unwrap();
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run ({e}); run `just setup`"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what}: {}\n{text}", out.status);
    text
}

fn bramble_cmd(dir: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("bramble"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1").env("BRAMBLE_CACHE", dir.join("cache"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Which `bramble` commands run for real here: offline, on files this test has.
fn runs_for_real(args: &[String]) -> bool {
    let exists = |w: &String| Path::new(REPO).join(w).exists();
    match args.first().map(String::as_str) {
        Some("eeprom") | Some("cache") => true,
        Some("validate") => args.iter().skip(1).all(exists),
        _ => false,
    }
}

/// Paths into the repository that the README names must be there.
fn repo_paths_exist(shown: &Shown, args: &[String]) {
    for w in args.iter().filter(|w| w.starts_with("recipes/")) {
        assert!(
            Path::new(REPO).join(w).exists(),
            "README.md:{}: `{}` names {w}, which is not in the repository",
            shown.line,
            shown.command
        );
    }
}

fn check_bramble(shown: &Shown, args: &[String], dir: &Path) {
    repo_paths_exist(shown, args);
    let what = format!("README.md:{}: `{}`", shown.line, shown.command);
    // It parses: every option and argument is one clap knows.
    let mut help = args.to_vec();
    help.push("--help".into());
    run(&mut bramble_cmd(dir, &help), &format!("{what} (parsed with --help)"));
    if !runs_for_real(args) {
        return;
    }
    if args.first().map(String::as_str) == Some("eeprom") {
        recovery_for(args, dir);
    }
    let here = if args.first().map(String::as_str) == Some("validate") { Path::new(REPO) } else { dir };
    let said = run(&mut bramble_cmd(here, args), &what);
    for line in shown.output.iter().filter(|l| !l.contains('…')) {
        assert!(
            said.lines().any(|l| l.trim_end() == line.trim_end()),
            "{what}: README shows `{line}`, the command said:\n{said}"
        );
    }
}

fn check_just(shown: &Shown, args: &[String]) {
    let what = format!("README.md:{}: `{}`", shown.line, shown.command);
    if args.first().is_some_and(|a| a.starts_with('-')) {
        run(Command::new("just").args(args).current_dir(REPO), &what);
        return;
    }
    let plan =
        run(Command::new("just").arg("--dry-run").args(args).current_dir(REPO), &format!("{what} (just --dry-run)"));
    if args.first().map(String::as_str) == Some("lab") {
        // The recipe `just lab` would build must be one bramble accepts.
        let build = plan
            .lines()
            .find_map(|l| l.trim().strip_prefix("target/release/bramble build"))
            .unwrap_or_else(|| panic!("{what}: no `bramble build` in the dry run:\n{plan}"));
        let recipe: Vec<String> =
            build.split_whitespace().take_while(|w| !w.starts_with('-')).map(String::from).collect();
        // It is the recipe the README names, as `recipe=PATH` or as `PATH`.
        let named: Vec<String> = args[1..].iter().map(|a| a.strip_prefix("recipe=").unwrap_or(a).to_string()).collect();
        assert_eq!(recipe, named, "{what}: just would hand bramble build {recipe:?}, not the recipe the README names");
        repo_paths_exist(shown, &recipe);
        if recipe.iter().all(|r| Path::new(REPO).join(r).exists()) {
            let mut validate = vec!["validate".to_string()];
            validate.extend(recipe);
            run(&mut bramble_cmd(Path::new(REPO), &validate), &format!("{what}: bramble {}", validate.join(" ")));
        }
    }
}

#[test]
fn every_command_in_the_readme_works_as_written() {
    let text = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let shown = readme_commands(&text);
    assert!(shown.len() >= 30, "found only {} commands in README.md: {shown:?}", shown.len());
    let mut dirs: std::collections::HashMap<usize, (tempfile::TempDir, PathBuf)> = Default::default();
    let mut checked = Vec::new();
    for s in &shown {
        let dir = &dirs
            .entry(s.block)
            .or_insert_with(|| {
                let t = tempfile::tempdir().unwrap();
                sandbox(t.path());
                let p = t.path().to_path_buf();
                (t, p)
            })
            .1;
        for w in s.command.split("&&").flat_map(variants) {
            let (program, args) = w.split_first().unwrap_or_else(|| panic!("README.md:{}: empty command", s.line));
            match program.as_str() {
                "bramble" => check_bramble(s, args, dir),
                "just" => check_just(s, args),
                // What the README installs with cargo must be a cargo subcommand that exists.
                "cargo" => {
                    run(
                        Command::new("cargo").arg(&args[0]).arg("--help"),
                        &format!("README.md:{}: cargo {}", s.line, args[0]),
                    );
                }
                other => panic!("README.md:{}: `{other}` has no rule here; teach this test how to run it", s.line),
            }
            checked.push(w.join(" "));
        }
    }
    eprintln!("checked {} commands from README.md", checked.len());
    // The commands the issue named are among them.
    for must in ["just lab recipe=recipes/debian.toml", "just test", "bramble validate recipes/mixed-server.toml"] {
        assert!(checked.iter().any(|c| c == must), "`{must}` not found in README.md");
    }
}

#[test]
fn the_extractor_finds_blocks_comments_and_inline_commands() {
    let text = "Run `just lab recipe=x.toml` or `cargo build`.\n```sh\njust test   # all\n\n# only a comment\n```\n\
                ```console\n$ bramble validate a.toml\na.toml: ok\n```\n```toml\nkey = 1\n```\n";
    let got: Vec<(usize, String, Vec<String>)> =
        readme_commands(text).into_iter().map(|s| (s.line, s.command, s.output)).collect();
    assert_eq!(
        got,
        [
            (1, "just lab recipe=x.toml".to_string(), vec![]),
            (3, "just test".to_string(), vec![]),
            (8, "bramble validate a.toml".to_string(), vec!["a.toml: ok".to_string()]),
        ]
    );
    assert_eq!(
        variants("show x.bin [--sections|--config-only] [TFTP_PREFIX=2 ...]"),
        [["show", "x.bin", "--sections", "TFTP_PREFIX=2"], ["show", "x.bin", "--config-only", "TFTP_PREFIX=2"]]
    );
}
