//! Facts about the machine a run happened on, for the report.

use std::fmt;

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` in GiB.
    pub memory_gib: f64,
    /// `PRETTY_NAME` from `/etc/os-release` and the kernel release.
    pub os: String,
}

impl Machine {
    /// Reads the facts; anything unreadable becomes "unknown".
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            cpu_model: field(&cpuinfo, "model name", ':').unwrap_or_else(|| "unknown".into()),
            memory_gib: field(&meminfo, "MemTotal", ':')
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
            os: format!(
                "{}, Linux {}",
                field(&os_release, "PRETTY_NAME", '=')
                    .map_or("unknown".into(), |v| v.trim_matches('"').to_owned()),
                kernel.trim()
            ),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPUs ({}), {:.1} GiB memory, {}",
            self.cpus, self.cpu_model, self.memory_gib, self.os
        )
    }
}

/// The value of the first `key<separator>value` line.
fn field(text: &str, key: &str, separator: char) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(separator)?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keyed_fields() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: fpu\n";
        assert_eq!(field(cpuinfo, "model name", ':').as_deref(), Some("AMD EPYC"));
        assert_eq!(
            field("PRETTY_NAME=\"Debian\"\n", "PRETTY_NAME", '=').as_deref(),
            Some("\"Debian\"")
        );
        assert_eq!(field(cpuinfo, "missing", ':'), None);
    }

    #[test]
    fn reads_this_machine() {
        let machine = Machine::read();
        assert!(machine.cpus >= 1);
        assert!(machine.memory_gib > 0.0, "{machine}");
    }
}
