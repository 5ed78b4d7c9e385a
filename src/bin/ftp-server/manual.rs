//! `ftp-server completions SHELL` and `ftp-server man`: shell completions and the
//! manual page, both made from the clap definitions of [`Args`], so neither can miss a
//! flag that `--help` shows.
//!
//! The page is clap_mangen's sections (name, synopsis, description, options, version)
//! with three of our own: the commands, each with its arguments (clap_mangen would
//! point to a page per command, which nobody installs), the signals and the files.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Args;
use crate::config::RELOADABLE;

/// Writes the completion script for `shell`.
///
/// # Errors
/// When `out` fails.
pub fn completions(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Args::command();
    // clap_complete panics when its writer fails (a closed pipe): it writes into
    // memory here, and the one write that can fail is ours.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ftp-server", &mut script);
    out.write_all(&script)
}

/// Writes the manual page, `ftp-server(1)`, as roff.
///
/// # Errors
/// When `out` fails.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Args::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(commands_section(&cmd).as_bytes())?;
    out.write_all(signals_section().as_bytes())?;
    out.write_all(FILES_SECTIONS.as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}

/// COMMANDS: each subcommand with its arguments and what it does.
fn commands_section(cmd: &clap::Command) -> String {
    let mut roff = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut head = format!("\\fBftp\\-server {}\\fR", escape(sub.get_name()));
        for arg in sub.get_positionals() {
            let name = arg.get_id().as_str().to_uppercase();
            head.push_str(&format!(" \\fI{}\\fR", escape(&name)));
        }
        roff.push_str(&format!(".TP\n{head}\n"));
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        roff.push_str(&escape(&about.replace('\n', " ")));
        roff.push('\n');
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            if !values.is_empty() {
                let name = arg.get_id().as_str().to_uppercase();
                roff.push_str(&format!(
                    ".br\n\\fI{}\\fR: {}.\n",
                    escape(&name),
                    escape(&values.join(", "))
                ));
            }
        }
    }
    roff
}

/// Text for roff: backslashes and dashes escaped, no line starting with a control
/// character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// SIGNALS: what SIGHUP reloads (the keys of [`RELOADABLE`]) and how the server stops.
fn signals_section() -> String {
    let keys: Vec<String> = RELOADABLE.iter().map(|key| escape(key)).collect();
    format!(
        r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reload: read the config file (if \fB\-\-config\fR names one), the users file and the TLS
certificate and key again, and put in force the keys that may change while the server runs:
{}. The other keys take a restart and keep their value, with a warning; TLS cannot be turned
on or off. Open sessions go on as they are: a session that logged in keeps its permissions, a
session in TLS keeps its certificate. When a file fails to load, the log says which and why,
and the settings in force stay. The log says \fBreloaded\fR when the new settings are in force.
.TP
\fBSIGINT\fR, \fBSIGTERM\fR
Graceful shutdown: stop accepting, tell idle sessions 421, let running transfers finish within
\fB\-\-grace\fR seconds, exit 0. A second signal exits at once.
"#,
        keys.join(", ")
    )
}

/// FILES and SEE ALSO, which the definitions do not hold.
const FILES_SECTIONS: &str = r#".SH FILES
.TP
\fI/etc/ftp\-server/ftp\-server.toml\fR
The config file of the systemd unit \fIcontrib/ftp\-server.service\fR (\fB\-\-config\fR);
\fIcontrib/ftp\-server.toml\fR is an annotated example with every key.
.TP
\fI/etc/ftp\-server/users.toml\fR
Accounts (\fB\-\-users\fR): name, argon2 password hash from \fBftp\-server hash\-password\fR,
home, permissions.
.SH "SEE ALSO"
\fBftp\-client\fR(1), \fBsystemctl\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_roff_control_characters_out() {
        assert_eq!(escape("max-per-ip"), "max\\-per\\-ip");
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a\\b"), "a\\eb");
    }

    #[test]
    fn the_page_names_every_command_and_flag() {
        let mut page = Vec::new();
        man_page(&mut page).expect("render");
        let page = String::from_utf8(page).expect("utf-8");
        assert!(page.contains("\n.TH ftp-server 1 "), "{page}");
        for command in ["hash-password", "check-config", "completions", "man"] {
            let shown = format!("\\fBftp\\-server {}\\fR", escape(command));
            assert!(page.contains(&shown), "{command} missing");
        }
        for key in crate::config::keys() {
            assert!(
                page.contains(&escape(&format!("--{key}"))),
                "--{key} missing"
            );
        }
    }
}
