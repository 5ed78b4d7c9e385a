//! Measuring: the wall-clock and CPU time of a workload's measured part ([`Meter`]),
//! and the server's memory, read from /proc. A server is its process tree: the PIDs
//! given and every process below them, because vsftpd and proftpd fork per session;
//! the CPU time of children that ended meanwhile is counted too, through the parent's
//! `cutime` and `cstime`.

use std::collections::HashMap;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::record::{Record, MIB};

/// Measures CPU time and wall-clock time of one workload's measured part.
pub(crate) struct Meter<'a> {
    pids: &'a [u32],
    server_before: Option<f64>,
    client_before: f64,
    start: Instant,
}

impl<'a> Meter<'a> {
    pub(crate) fn start(pids: &'a [u32]) -> Meter<'a> {
        Meter {
            pids,
            server_before: server_cpu(pids),
            client_before: self_cpu(),
            start: Instant::now(),
        }
    }

    /// Stops the clock for a transfer of `bytes`: the record's rate in MiB/s.
    pub(crate) fn stop_rate(self, record: &mut Record, bytes: u64) {
        self.stop(record);
        record.work = bytes as f64;
        record.value = record.work / MIB / record.secs;
    }

    /// Stops the clock; then waits a moment for ending sessions' processes to be
    /// reaped (their CPU time reaches the parent only then) and reads the CPU times.
    pub(crate) fn stop(self, record: &mut Record) {
        record.secs = self.start.elapsed().as_secs_f64();
        if !self.pids.is_empty() {
            thread::sleep(Duration::from_millis(300));
        }
        record.client_cpu = self_cpu() - self.client_before;
        record.server_cpu = match (self.server_before, server_cpu(self.pids)) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
    }
}

/// Clock ticks per second in /proc's CPU times (USER_HZ: 100 on every Linux port
/// whose ABI we run on; the kernel converts its own HZ to it).
const USER_HZ: f64 = 100.0;

/// Fields of /proc/<pid>/stat after the command name: (ppid, user+system time of the
/// process and of its reaped children, in ticks).
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(u32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some((ppid, ticks))
}

/// The PIDs of `roots` and of every process below them.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = proc_stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if tree.contains(&pid) {
            continue;
        }
        tree.push(pid);
        if let Some(kids) = children.get(&pid) {
            todo.extend(kids);
        }
    }
    tree
}

/// CPU seconds of the server's process trees (including reaped children), or `None`
/// without PIDs or when none of them is alive.
fn server_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let mut ticks = 0u64;
    let mut seen = false;
    for pid in process_tree(pids) {
        if let Some((_, t)) = proc_stat(pid) {
            ticks += t;
            seen = true;
        }
    }
    seen.then(|| ticks as f64 / USER_HZ)
}

/// CPU seconds of this process, its threads and its reaped children (curl).
pub(crate) fn self_cpu() -> f64 {
    proc_stat(std::process::id()).map_or(0.0, |(_, t)| t as f64 / USER_HZ)
}

/// Resident memory of the server's process trees: (RSS KiB, PSS KiB, processes).
/// RSS counts pages shared between forked processes once per process; PSS divides
/// them among the sharers.
pub(crate) fn server_memory(pids: &[u32]) -> Option<(u64, u64, usize)> {
    if pids.is_empty() {
        return None;
    }
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (mut rss, mut pss, mut procs) = (0, 0, 0);
    for pid in process_tree(pids) {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        procs += 1;
        rss += field(&status, "VmRSS:");
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            pss += field(&rollup, "Pss:");
        }
    }
    (procs > 0).then_some((rss, pss, procs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(line), Some((7, 11 + 22 + 33 + 44)));
    }
}
