//! Logs: `tracing` to stderr, where journald (or a terminal) collects them. Plain text
//! without colours by default, one JSON object per line with `log_format = "json"`;
//! levels per module from the `log` filter (e.g. "info,sfu_signaling::room=debug").

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `filter` was validated with the configuration.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // systemd sets JOURNAL_STREAM when stderr goes to the journal, which stamps every
    // line itself: a second timestamp would only make lines longer.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if journald => builder.with_ansi(false).without_time().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}
