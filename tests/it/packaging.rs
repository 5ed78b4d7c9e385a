//! What installing the server brings along (issue 13, item 8): the systemd unit in
//! `contrib/`, accepted by `systemd-analyze verify` and hardened; shell completions
//! and the manual page, generated from the flag definitions, naming every flag.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{have, require, run_peer};

const UNIT: &str = include_str!("../../contrib/ftp-server.service");

/// Runs `ftp-server args...` to its end; its stdout, after checking it exited 0.
fn ftp_server(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-server"));
    cmd.args(args);
    let run = run_peer(cmd);
    assert!(run.status.success(), "ftp-server {args:?}: {}", run.stderr);
    run.stdout
}

/// Every long flag that `ftp-server --help` shows (`--port`, ..., `--help`).
fn flags_in_help() -> BTreeSet<String> {
    let help = ftp_server(&["--help"]);
    let flags: BTreeSet<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_owned)
        .collect();
    for flag in [
        "--port",
        "--users",
        "--tls-cert",
        "--max-per-ip",
        "--config",
        "--help",
    ] {
        assert!(flags.contains(flag), "{flag} not in --help: {help}");
    }
    flags
}

/// The unit's `Key=value` lines, in order (comments and sections left out).
fn unit_settings() -> Vec<(String, String)> {
    UNIT.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn unit_value(key: &str) -> String {
    unit_settings()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{key}= missing from the unit"))
}

#[test]
fn the_systemd_unit_is_hardened_and_systemd_analyze_verify_accepts_it() {
    // What the unit promises, read from it.
    assert_eq!(unit_value("User"), "ftp-server");
    assert_eq!(unit_value("ProtectSystem"), "strict");
    assert_eq!(unit_value("ReadWritePaths"), "/srv/ftp");
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    assert_eq!(unit_value("PrivateTmp"), "yes");
    assert_eq!(unit_value("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(unit_value("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(unit_value("ExecReload"), "/bin/kill -HUP $MAINPID");
    let exec = unit_value("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/ftp-server");
    // The root it serves is the one path it may write.
    let root = words.windows(2).find(|w| w[0] == "--root").map(|w| w[1]);
    assert_eq!(root, Some("/srv/ftp"), "{exec}");
    assert!(words.windows(2).any(|w| w[0] == "--config"), "{exec}");
    // The server parses the unit's command line as it will run it (but the files it
    // names, which belong to the machine it is installed on).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-server"));
    cmd.args(&words[1..]).arg("--help");
    assert!(run_peer(cmd).status.success(), "{exec}");

    if !require(
        have("systemd-analyze", &["--version"]),
        "systemd-analyze (apt-get install systemd)",
    ) {
        return;
    }
    // systemd-analyze checks that ExecStart's program exists: point it at the binary
    // under test, in a copy of the unit under the same name.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("ftp-server.service");
    let binary = env!("CARGO_BIN_EXE_ftp-server");
    fs::write(&unit, UNIT.replace("/usr/local/bin/ftp-server", binary)).expect("write unit");
    // `--man=no`: the man page of Documentation= is not installed on this machine.
    let verify = analyze(&["verify", "--man=no"], &unit);
    // verify also exits 0 for unknown keys and bad values, which it only prints.
    let about_ours: Vec<&str> = verify
        .stderr
        .lines()
        .chain(verify.stdout.lines())
        .filter(|l| l.contains("ftp-server.service"))
        .collect();
    assert!(
        verify.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {}{}",
        verify.stdout,
        verify.stderr
    );

    // systemd's own measure of what the service is exposed to: "OK" is below 4 of 10
    // (an unhardened service scores 9.6).
    let security = analyze(&["security", "--offline=yes"], &unit);
    let text = format!("{}{}", security.stdout, security.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ftp-server.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(score < 4.0, "exposure level {score}: {text}");
}

fn analyze(args: &[&str], unit: &Path) -> crate::common::PeerRun {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args).arg(unit).env("SYSTEMD_PAGER", "cat");
    run_peer(cmd)
}

/// `bash -c` this with the completion script as `$0`: prints the completions of
/// `ftp-server --max-p`.
const COMPLETE_MAX_P: &str = r#"
source "$0" || exit 1
function=$(complete -p ftp-server | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[ -n "$function" ] || { echo "no completion function for ftp-server" >&2; exit 1; }
COMP_WORDS=(ftp-server --max-p)
COMP_CWORD=1
COMP_LINE='ftp-server --max-p'
COMP_POINT=${#COMP_LINE}
"$function" ftp-server --max-p ftp-server
printf '%s\n' "${COMPREPLY[@]}"
"#;

#[test]
fn shell_completions_name_every_flag_and_bash_accepts_its_script() {
    let flags = flags_in_help();
    for shell in ["bash", "zsh", "fish"] {
        let script = ftp_server(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {script}");
        for flag in &flags {
            // fish lists long flags without their dashes (`-l port`).
            let named = match shell {
                "fish" => format!("-l {}", &flag[2..]),
                _ => flag.clone(),
            };
            assert!(script.contains(&named), "{shell} completion lacks {flag}");
        }
        for command in ["check-config", "hash-password", "completions", "man"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("ftp-server.bash");
    fs::write(&script, ftp_server(&["completions", "bash"])).expect("write");
    let mut check = Command::new("bash");
    check.arg("-n").arg(&script);
    let run = run_peer(check);
    assert!(run.status.success(), "bash -n: {}", run.stderr);
    // And bash, loading it, completes a flag: the function the script registers for
    // ftp-server, called as bash calls it for `ftp-server --max-p<TAB>`.
    let mut complete = Command::new("bash");
    complete.arg("-c").arg(COMPLETE_MAX_P).arg(&script);
    let run = run_peer(complete);
    assert!(run.status.success(), "bash completion: {}", run.stderr);
    assert_eq!(run.stdout.trim(), "--max-per-ip", "{run:?}");
}

#[test]
fn the_man_page_names_every_flag_command_and_signal() {
    let page = ftp_server(&["man"]);
    assert!(page.contains(".TH ftp-server 1"), "{page}");
    for flag in flags_in_help() {
        // roff writes a dash as `\-`.
        let roff = flag.replace('-', "\\-");
        assert!(page.contains(&roff), "the man page lacks {flag}");
    }
    for command in ["check\\-config", "hash\\-password", "completions", "man"] {
        assert!(
            page.contains(&format!("\\fBftp\\-server {command}\\fR")),
            "the man page lacks {command}"
        );
    }
    for section in [
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH SIGNALS",
        ".SH FILES",
    ] {
        assert!(page.contains(section), "the man page lacks {section}");
    }
    assert!(page.contains("\\fBSIGHUP\\fR"), "{page}");
    // Rendered by man where it is installed (not needed for the rest of the test):
    // the page formats without a warning, and its text names the flags.
    if have("man", &["--version"]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ftp-server.1");
        fs::write(&file, &page).expect("write");
        let mut cmd = Command::new("man");
        cmd.arg("-l").arg(&file).env("MANWIDTH", "200");
        let run = run_peer(cmd);
        assert!(run.status.success(), "man -l: {}", run.stderr);
        assert!(run.stderr.trim().is_empty(), "man -l: {}", run.stderr);
        let text = plain(&run.stdout);
        for flag in ["--max-per-ip", "--tls-cert", "SIGHUP", "check-config FILE"] {
            assert!(text.contains(flag), "man -l lacks {flag}: {text}");
        }
    } else {
        eprintln!("not rendered: man is not installed");
    }
}

/// Text as a terminal shows it: without the overstrikes (`X\x08X` for bold,
/// `_\x08X` for underline) that man writes when it formats for one.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{8}' {
            // The next character replaces the one before the backspace.
            out.pop();
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    // man may print a dash as U+2010 (hyphen) or U+2212 (minus).
    out.into_iter()
        .map(|c| {
            if matches!(c, '\u{2010}' | '\u{2212}') {
                '-'
            } else {
                c
            }
        })
        .collect()
}
