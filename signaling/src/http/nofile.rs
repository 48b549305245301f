//! The open-file limit: raised to its hard limit at start (the soft default, often 1,024,
//! is what let idle connections exhaust the process), and the connection cap sized below
//! it so that the process itself never runs out of file descriptors.

/// File descriptors kept for everything but client connections: stdio, the runtime's
/// epoll and wake-up descriptors, the listeners, the daemon's control sockets (one per
/// worker) and a started daemon's pipes.
pub const RESERVED_FDS: usize = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    rlimit::utils::increase_nofile_limit(u64::MAX)
}

/// The total connection cap that fits under `nofile` descriptors, given the `configured`
/// cap and the connections being refused (each holds a descriptor for a moment). None if
/// nothing fits.
pub fn fit_connections(configured: usize, nofile: u64, refusing: usize) -> Option<usize> {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let room = nofile.checked_sub(RESERVED_FDS + refusing)?;
    (room > 0).then(|| configured.min(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_under_the_limit() {
        assert_eq!(fit_connections(4096, 1 << 20, 64), Some(4096));
        assert_eq!(fit_connections(4096, 1024, 64), Some(1024 - 128 - 64));
        assert_eq!(fit_connections(4096, 192, 64), None);
        assert_eq!(fit_connections(4096, 100, 64), None);
        assert_eq!(fit_connections(4096, u64::MAX, 64), Some(4096));
    }
}
