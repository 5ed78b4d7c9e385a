//! The result line: every measurement is one [`Record`], printed as one tab-separated
//! line of [`COLUMNS`] fields. The workloads and `limits` print them, `bench/compare.sh`
//! collects them (and writes its own for the figures it measures with other tools),
//! and `table` parses them back, so [`Record::tsv`] and [`Record::parse`] are each
//! other's inverse.

/// One result line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    /// The server's name (`machine` for the machine's limits).
    pub(crate) label: String,
    pub(crate) round: u32,
    /// `retr-large`, `stor-small`, `churn`, `idle-rss`, ...
    pub(crate) workload: String,
    /// What drove it: `ftp-bench`, `curl`, ...
    pub(crate) client: String,
    /// The figure itself, in `unit`.
    pub(crate) value: f64,
    pub(crate) unit: String,
    /// Units of work done: bytes, transfers or sessions (CPU per unit is server_cpu / work).
    pub(crate) work: f64,
    /// Wall-clock seconds of the measured part.
    pub(crate) secs: f64,
    /// Server CPU seconds (user + system, whole process tree) during the measured part.
    pub(crate) server_cpu: Option<f64>,
    /// CPU seconds of the load generator (and its children, e.g. curl).
    pub(crate) client_cpu: f64,
    /// Whether everything moved was checked and right, and every operation succeeded.
    pub(crate) ok: bool,
    pub(crate) note: String,
}

pub(crate) const COLUMNS: usize = 12;

impl Record {
    /// A failed record with no figures yet, to be filled in.
    pub(crate) fn blank(label: &str, round: u32, workload: &str, client: &str) -> Record {
        Record {
            label: label.to_owned(),
            round,
            workload: workload.to_owned(),
            client: client.to_owned(),
            value: 0.0,
            unit: String::new(),
            work: 0.0,
            secs: 0.0,
            server_cpu: None,
            client_cpu: 0.0,
            ok: false,
            note: String::new(),
        }
    }

    pub(crate) fn tsv(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let cpu = self
            .server_cpu
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.3}"));
        format!(
            "{}\t{}\t{}\t{}\t{:.3}\t{}\t{}\t{:.3}\t{}\t{:.3}\t{}\t{}",
            clean(&self.label),
            self.round,
            clean(&self.workload),
            clean(&self.client),
            self.value,
            clean(&self.unit),
            self.work,
            self.secs,
            cpu,
            self.client_cpu,
            if self.ok { "ok" } else { "FAIL" },
            clean(&self.note),
        )
    }

    pub(crate) fn parse(line: &str) -> Option<Record> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != COLUMNS {
            return None;
        }
        Some(Record {
            label: f[0].to_owned(),
            round: f[1].parse().ok()?,
            workload: f[2].to_owned(),
            client: f[3].to_owned(),
            value: f[4].parse().ok()?,
            unit: f[5].to_owned(),
            work: f[6].parse().ok()?,
            secs: f[7].parse().ok()?,
            server_cpu: f[8].parse().ok(),
            client_cpu: f[9].parse().ok()?,
            ok: f[10] == "ok",
            note: f[11].to_owned(),
        })
    }
}

/// Bytes in a MiB: rates are in MiB/s, CPU per GiB is per 1024 of them.
pub(crate) const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ok record with a tab in its note, for the tests here and those of the table.
    pub(crate) fn rec(
        label: &str,
        round: u32,
        workload: &str,
        value: f64,
        cpu: f64,
        work: f64,
    ) -> Record {
        Record {
            label: label.into(),
            round,
            workload: workload.into(),
            client: "ftp-bench".into(),
            value,
            unit: "transfers/s".into(),
            work,
            secs: 1.0,
            server_cpu: Some(cpu),
            client_cpu: 0.5,
            ok: true,
            note: "fine\tnote".into(),
        }
    }

    #[test]
    fn a_record_survives_its_tsv_line_with_tabs_in_the_note_flattened() {
        let r = rec("ours", 2, "churn", 1234.5, 0.25, 1600.0);
        let line = r.tsv();
        assert_eq!(line.split('\t').count(), COLUMNS);
        let back = Record::parse(&line).expect("parse");
        assert_eq!(back.note, "fine note");
        assert_eq!(back.value, 1234.5);
        assert_eq!(back.server_cpu, Some(0.25));
        assert_eq!(back.work, 1600.0);
        assert!(back.ok);
    }

    #[test]
    fn a_line_without_server_cpu_parses_as_none() {
        let mut r = rec("x", 0, "churn", 1.0, 0.0, 1.0);
        r.server_cpu = None;
        let back = Record::parse(&r.tsv()).expect("parse");
        assert_eq!(back.server_cpu, None);
        assert!(Record::parse("not\ta record").is_none());
    }
}
