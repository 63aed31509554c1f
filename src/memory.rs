//! Memory budget for plans that may not fit (explicit Jacobians, dense kernels).

/// The default budget: half of the memory the OS reports as available
/// (`MemAvailable` in `/proc/meminfo`), or 4 GiB where that cannot be read.
/// Overridden by the environment variable `ITLIN_MEMORY_BUDGET_MB`.
pub fn default_budget() -> u64 {
    if let Some(mb) = std::env::var("ITLIN_MEMORY_BUDGET_MB")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return mb << 20;
    }
    available_bytes().map_or(4 << 30, |b| b / 2)
}

/// Bytes the OS reports as available, where it can be read.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of a dense `rows × cols` matrix of `T`.
pub fn dense_bytes<T>(rows: usize, cols: usize) -> u64 {
    (rows as u64) * (cols as u64) * std::mem::size_of::<T>() as u64
}
