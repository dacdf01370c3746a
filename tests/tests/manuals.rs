//! Man pages and shell completions, as `cargo xtask package` installs
//! them: pktd(8) and pktcap(1) generated from the flags' definitions
//! (`--generate man`), the hand-written pktd-policy(5), and the bash, zsh
//! and fish completions (`--generate SHELL`), each checked by the tool
//! that reads it: man (groff's warnings), bash, zsh and fish themselves.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use pktd_daemon::policy::Policy;
use pktd_tests::process::bin_path;

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("running {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `BINARY --generate WHAT` into a file of a fresh directory.
fn generated(binary: &str, what: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pktd-manuals-{}-{binary}-{what}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let output = run(Command::new(bin_path(binary)).args(["--generate", what]));
    let path = dir.join(name);
    std::fs::write(&path, output.stdout).unwrap();
    path
}

/// The page as man renders it (plain text); fails on any groff warning.
fn rendered(page: &Path) -> String {
    let output = run(Command::new("man")
        .args(["--warnings=all", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("PAGER", "cat"));
    let warnings = String::from_utf8_lossy(&output.stderr);
    assert!(warnings.trim().is_empty(), "{}: {warnings}", page.display());
    // Overstrike (bold, underline) off.
    let text = String::from_utf8(output.stdout).unwrap();
    let mut plain = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The long flags `BINARY --help` lists.
fn long_flags(binary: &str) -> BTreeSet<String> {
    let help = run(Command::new(bin_path(binary)).arg("--help"));
    String::from_utf8(help.stdout)
        .unwrap()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn pktd_and_pktcap_man_pages_render_cleanly_and_list_every_flag() {
    for (binary, section, extra) in [
        (
            "pktd",
            "8",
            &["SIGNALS", "SYSTEMD", "FILES", "SEE ALSO"][..],
        ),
        (
            "pktcap",
            "1",
            &["ENVIRONMENT", "EXIT STATUS", "SEE ALSO"][..],
        ),
    ] {
        let page = generated(binary, "man", &format!("{binary}.{section}"));
        let text = rendered(&page);
        let title = format!("{}({section})", binary);
        assert!(text.starts_with(&title), "{binary}: {}", &text[..80]);
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"]
            .iter()
            .chain(extra)
        {
            assert!(
                text.lines().any(|line| line == *heading),
                "{binary}({section}) has no {heading} section"
            );
        }
        let flags = long_flags(binary);
        assert!(flags.len() >= 8, "{binary}: {flags:?}");
        for flag in &flags {
            assert!(
                text.contains(flag.as_str()),
                "{binary}({section}) lacks {flag}"
            );
        }
    }
}

/// The keys the policy parser knows at one level, from its own refusal of
/// an unknown one ("expected one of `a`, `b`, …").
fn known_keys(policy: &str) -> Vec<String> {
    let error = Policy::parse(policy, "keys.toml")
        .expect_err("an unknown key is refused")
        .to_string();
    // serde says "expected `a`" for one key, "expected one of `a`, …" for
    // more.
    let (_, list) = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("{error}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn pktd_policy_5_documents_every_key_the_parser_knows() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man/pktd-policy.5");
    let source = std::fs::read_to_string(&page).unwrap();
    let text = rendered(&page);
    assert!(text.starts_with("PKTD-POLICY(5)"), "{}", &text[..60]);
    let principal = known_keys("[[principal]]\nzzz = 1\n");
    let anonymize = known_keys("[[principal]]\nname = \"x\"\nanonymize = { zzz = 1 }\n");
    let top = known_keys("zzz = 1\n");
    assert!(principal.len() >= 20, "{principal:?}");
    assert_eq!(
        anonymize,
        ["ip", "mac", "payload", "key_file"],
        "the anonymize table's keys"
    );
    assert_eq!(top, ["principal"]);
    // Each key is a term of its own list: `.B key` on its own line.
    for key in principal.iter().chain(&anonymize) {
        assert!(
            source.lines().any(|line| line == format!(".B {key}")),
            "pktd-policy(5) does not describe `{key}`"
        );
    }
    // And its example is a policy pktd accepts (the key file aside).
    let example: String = text
        .split("EXAMPLE")
        .nth(1)
        .and_then(|rest| rest.split("FILES").next())
        .expect("an EXAMPLE section")
        .lines()
        .map(|line| line.trim_start())
        .filter(|line| !line.starts_with("anonymize"))
        .collect::<Vec<_>>()
        .join("\n");
    Policy::parse(&example, "example.toml")
        .unwrap_or_else(|err| panic!("the man page's example: {err}\n{example}"));
}

#[test]
fn completions_load_in_bash_zsh_and_fish_and_complete_flags() {
    for (binary, partial, full) in [
        ("pktd", "--pol", "--policy"),
        ("pktcap", "--inter", "--interface"),
    ] {
        // bash: the function completes a partial flag.
        let bash = generated(binary, "bash", binary);
        let script = format!(
            "source {}; COMP_WORDS=({binary} {partial}); COMP_CWORD=1; \
             _{binary} {binary} {partial} {binary}; echo \"${{COMPREPLY[@]}}\"",
            bash.display()
        );
        let output = run(Command::new("bash").args(["--norc", "-c", &script]));
        let offered = String::from_utf8(output.stdout).unwrap();
        assert!(
            offered.split_whitespace().any(|word| word == full),
            "bash offers {offered:?} for {binary} {partial}"
        );
        assert!(output.stderr.is_empty(), "bash: {:?}", output.stderr);

        // zsh: it parses, and is a completion function for the binary.
        let zsh = generated(binary, "zsh", &format!("_{binary}"));
        run(Command::new("zsh").arg("-n").arg(&zsh));
        let text = std::fs::read_to_string(&zsh).unwrap();
        assert!(text.starts_with(&format!("#compdef {binary}")), "zsh");
        assert!(text.contains(full), "zsh lacks {full}");

        // fish: it loads without an error and completes the flag.
        let fish = generated(binary, "fish", &format!("{binary}.fish"));
        let script = format!(
            "source {}; and complete -C '{binary} {partial}'",
            fish.display()
        );
        let output = run(Command::new("fish").args(["--no-config", "-c", &script]));
        assert!(
            output.stderr.is_empty(),
            "fish: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let offered = String::from_utf8(output.stdout).unwrap();
        assert!(
            offered
                .lines()
                .any(|line| line.split('\t').next() == Some(full)),
            "fish offers {offered:?} for {binary} {partial}"
        );
    }
}
