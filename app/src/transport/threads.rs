//! How many runtime threads portico starts: one per CPU by default, but never more than its
//! cgroup lets it create (systemd's TasksMax=). A thread the kernel refuses makes the
//! runtime abort at start, and systemd would then restart it forever.

use std::path::Path;

use crate::config::ConfigError;

/// Threads besides the workers: the main thread and one for the runtime's blocking pool.
pub(crate) const OTHER_THREADS: usize = 2;

/// The worker count to run with: `configured` if it fits the task limit, else an error
/// that says what fits; by default the CPUs available, capped by the task limit.
pub(crate) fn workers(configured: Option<usize>) -> Result<usize, ConfigError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    choose(configured, cpus, tasks_max())
}

fn choose(configured: Option<usize>, cpus: usize, tasks_max: Option<usize>) -> Result<usize, ConfigError> {
    let room = tasks_max.map(|max| max.saturating_sub(OTHER_THREADS).max(1));
    match (configured, room, tasks_max) {
        (Some(n), Some(room), Some(max)) if n > room => Err(ConfigError(format!(
            "`workers` = {n} needs {} tasks, but portico's cgroup allows {max} (TasksMax= in \
             the unit): set workers to {room} or less, or leave it unset to fit automatically",
            n + OTHER_THREADS
        ))),
        (Some(n), _, _) => Ok(n),
        (None, room, _) => Ok(cpus.min(room.unwrap_or(usize::MAX))),
    }
}

/// The lowest `pids.max` of this process's cgroup and its ancestors (cgroup v1 or v2).
fn tasks_max() -> Option<usize> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let root = match controllers {
            "" => "/sys/fs/cgroup",
            c if c.split(',').any(|c| c == "pids") => "/sys/fs/cgroup/pids",
            _ => return None,
        };
        Some(Path::new(root).join(path.trim_start_matches('/')))
    })?;
    own.ancestors()
        .take_while(|dir| dir.starts_with("/sys/fs/cgroup"))
        .filter_map(|dir| std::fs::read_to_string(dir.join("pids.max")).ok()?.trim().parse().ok())
        .min()
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn the_default_fits_the_task_limit_on_any_cpu_count() {
        assert_eq!(choose(None, 64, Some(16)).unwrap(), 14);
        assert_eq!(choose(None, 2, Some(16)).unwrap(), 2);
        assert_eq!(choose(None, 64, None).unwrap(), 64);
        assert_eq!(choose(None, 8, Some(2)).unwrap(), 1);
    }

    #[test]
    fn a_configured_count_over_the_limit_is_refused_with_what_fits() {
        let err = choose(Some(64), 64, Some(16)).unwrap_err().to_string();
        assert!(err.contains("needs 66 tasks") && err.contains("14 or less"), "{err}");
        assert_eq!(choose(Some(14), 64, Some(16)).unwrap(), 14);
        assert_eq!(choose(Some(64), 2, None).unwrap(), 64);
    }
}
