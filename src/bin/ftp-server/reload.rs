//! SIGHUP: read the settings again and put the reloadable ones in force.
//!
//! A reload reads what a start reads, with the same command line: the config file (if
//! `--config` names one), then the users file and the TLS certificate and key the
//! settings name. Only when all of it loads does the server get the new settings, in
//! one swap ([`ReloadHandle::replace`]); otherwise one log line names the file that
//! failed and why, and the settings in force stay. Keys that take a restart
//! ([`RELOADABLE`](crate::config::RELOADABLE) lists the others) keep their value, with
//! a warning when the file changed them. Open sessions go on with what they had.

use simple_ftp::server::{ReloadHandle, Reloadable};

use crate::config::{CommandLine, ConfigFile, Settings};

/// What a reload needs: the command line the server started with, the settings in
/// force, and the server's handle.
pub struct Reloader {
    cli: CommandLine,
    settings: Settings,
    handle: ReloadHandle,
    workers: usize,
}

impl Reloader {
    /// A reloader for a server started with `cli` and `settings`, with `workers`
    /// worker threads (which bound the sessions the open-files limit allows).
    pub fn new(cli: CommandLine, settings: Settings, handle: ReloadHandle, workers: usize) -> Self {
        Reloader {
            cli,
            settings,
            handle,
            workers,
        }
    }

    /// Reloads, and logs the outcome: a line with `reloaded` when the new settings
    /// are in force, a line with `reload failed` naming the file and the reason when
    /// they are not.
    pub fn reload(&mut self) {
        log::info!("reloading the settings (SIGHUP)");
        match self.try_reload() {
            Ok(summary) => log::info!("reloaded: {summary}"),
            Err(e) => log::error!("reload failed, the settings in force stay: {e:#}"),
        }
    }

    fn try_reload(&mut self) -> anyhow::Result<String> {
        let file = match &self.cli.args().config {
            Some(path) => Some(ConfigFile::load(path)?),
            None => None,
        };
        let read = Settings::combine(&self.cli, file.as_ref())?;
        let reload = self.settings.reload(read)?;
        let mut config = reload.settings.server_config()?;
        // The warning that the limit is lowered came at start; again only for a new value.
        let new_limit = config.max_connections != self.settings.args().max_connections.max(1);
        config.max_connections =
            crate::open_files(self.workers, config.max_connections, new_limit).0;
        let live = Reloadable::of(&config);
        let mut summary = Vec::new();
        if let Some(file) = &file {
            summary.push(format!("settings from {}", file.path().display()));
        }
        if let Some(users) = &reload.settings.args().users {
            summary.push(format!(
                "accounts from {}: {}",
                users.display(),
                live.users.len()
            ));
        }
        if let Some(cert) = &reload.settings.args().tls_cert {
            summary.push(format!("TLS certificate from {}", cert.display()));
        }
        self.handle.replace(live)?;
        log::set_max_level(reload.settings.log_level());
        for setting in &reload.kept {
            let why = match setting.key.as_str() {
                "tls-cert" | "tls-key" => "turning TLS on or off takes a restart",
                _ => "it takes a restart",
            };
            log::warn!("reload: {setting} changed, but {why}: kept as it was");
        }
        if reload.changed.is_empty() {
            summary.push("no key changed".to_owned());
        } else {
            summary.push(format!("changed {}", reload.changed.join(", ")));
        }
        self.settings = reload.settings;
        Ok(summary.join("; "))
    }
}
